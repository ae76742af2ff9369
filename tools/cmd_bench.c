/* cmd_bench.c — placeholder until its issue lands (replaced, never shipped). */
#include "cli.h"
int cmd_bench(int argc, char **argv) { return cli_usage_error(argv[0], "not built yet"); }
