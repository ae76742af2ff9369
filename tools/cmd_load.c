/* cmd_load.c — placeholder until its issue lands (replaced, never shipped). */
#include "cli.h"
int cmd_load(int argc, char **argv) { return cli_usage_error(argv[0], "not built yet"); }
