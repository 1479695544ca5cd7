"""What the model-writing scripts (fashion_cnn.py, char_lstm.py) share: the
ONNX model around a graph, checked, and a command line that saves it."""
import argparse

import onnx
from onnx import helper


def finish(graph, script):
    """The opset-17 model of graph, checked by onnx.checker."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name=f"kiln scripts/{script}")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main(build, doc, options):
    """python SCRIPT OUT.onnx [--NAME N ...]: saves build(**options) to OUT;
    options maps each integer option's name to its default."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    for name, default in options.items():
        ap.add_argument(f"--{name}", type=int, default=default)
    a = vars(ap.parse_args())
    onnx.save(build(**{k: a[k] for k in options}), a["out"])
