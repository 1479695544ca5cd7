#!/usr/bin/env bash
# Installs what kiln needs on a fresh Debian machine; idempotent.
#   scripts/setup.sh         apt packages for building
#   scripts/setup.sh --venv  also the Python venv in .venv (test oracles)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(cmake make gcc clang libclang-rt-14-dev pkg-config protobuf-c-compiler
          libprotobuf-c-dev libonnx-dev libcmocka-dev libdnnl-dev zlib1g-dev libcjson-dev
          libmicrohttpd-dev prometheus curl
          dataset-fashion-mnist golang-github-colinmarc-hdfs-dev python3 python3-venv)

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "${1:-}" = "--venv" ]; then
  stamp=.venv/.kiln-requirements
  if [ ! -x .venv/bin/python ] || ! cmp -s requirements-test.txt "$stamp"; then
    echo "setup: creating .venv (numpy, onnx, onnxruntime)"
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -r requirements-test.txt
    cp requirements-test.txt "$stamp"
  fi
fi
