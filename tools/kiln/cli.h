/* tools/kiln/cli.h: subcommands of the `kiln` command and shared helpers. */
#ifndef KILN_CLI_H
#define KILN_CLI_H

#include "kiln/kiln.h"

int kiln_cmd_info(int argc, char **argv);
int kiln_cmd_run(int argc, char **argv);

/* Prints "kiln <cmd>: <what>: <last error>" to stderr and returns 1. */
int kiln_cli_fail(const char *cmd, kiln_status s);
/* Parses a positive thread count; returns -1 if invalid. */
int kiln_cli_threads(const char *s);
/* "float32[1,3,224,224]" style description of a value. */
void kiln_cli_describe(const kiln_value_info *v, char *buf, size_t len);

#endif
