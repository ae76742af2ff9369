/* cmd_inspect.c — placeholder until its issue lands (replaced, never shipped). */
#include "cli.h"
int cmd_inspect(int argc, char **argv) { return cli_usage_error(argv[0], "not built yet"); }
