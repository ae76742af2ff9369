/* cli_group.h — the options of `hoist load` and `hoist bench load` that
 * load with other ranks (--rank, --world-size, --rendezvous,
 * --group-timeout, --devices, --shard), torchrun's variables, and the
 * grouped `hoist load` (cmd_load_group.c). */
#ifndef HOIST_CLI_GROUP_H
#define HOIST_CLI_GROUP_H

#include "cli.h"

typedef struct cli_group_opts {
  hoist_group_options opts;
  int given;           /* --rank, --world-size or --rendezvous was given */
  const char *devices; /* --devices: ranks of this process, one per device */
  unsigned repeat;     /* --repeat: loads per rank (benchmarks), default 1 */
} cli_group_opts;

void cli_group_opts_init(cli_group_opts *g);
/* Parses one option at argv[*i] into g (and --shard into load).  1 when
 * consumed, 0 when not one of these, -1 after a usage error. */
int cli_group_opt(const char *cmd, int argc, char **argv, int *i, cli_group_opts *g,
                  hoist_load_options *load);
/* Whether the load has other ranks: an option, or torchrun's RANK and
 * WORLD_SIZE (> 1) in the environment. */
bool cli_group_wanted(const cli_group_opts *g);
/* "cuda:N" for N the group's local rank when device is "cuda" (a plain
 * "cuda" with ranks means the card of this rank), else device; buf holds
 * the result. */
const char *cli_group_device(const char *device, const hoist_group *g, char *buf, size_t size);
/* Splits --devices "cuda:0,cuda:1" into at most max specs (each copied
 * into specs[i], 32 bytes); the count, or -1 after a usage error. */
int cli_group_devices(const char *cmd, const char *list, char specs[][32], int max);

extern const char cli_group_help[];

/* `hoist load` with ranks: one rank per process (--rank/--world-size or
 * torchrun's variables), or one per device of --devices on threads of this
 * process.  o's options parsed; returns the exit code. */
struct cli_load_opts;
int cmd_load_group(struct cli_load_opts *o, const char *path);

#endif
