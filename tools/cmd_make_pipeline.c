/* cmd_make_pipeline.c — placeholder until its issue lands (replaced, never shipped). */
#include "cli.h"
int cmd_make_pipeline(int argc, char **argv) { return cli_usage_error(argv[0], "not built yet"); }
