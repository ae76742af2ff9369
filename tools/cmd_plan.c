/* cmd_plan.c — placeholder until its issue lands (replaced, never shipped). */
#include "cli.h"
int cmd_plan(int argc, char **argv) { return cli_usage_error(argv[0], "not built yet"); }
