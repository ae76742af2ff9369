/* cli_load_opts.h — the options `hoist load` and `hoist bench load` share
 * (device, capacity, threads, chunk, ring, read mode, residency) and the
 * progress bar drawn on stderr. */
#ifndef HOIST_CLI_LOAD_OPTS_H
#define HOIST_CLI_LOAD_OPTS_H

#include "cli.h"

typedef struct cli_load_opts {
  hoist_config cfg;
  hoist_load_options load;
  const char *variant;
  int json;
  int progress_bar; /* stderr is a terminal and not --json */
} cli_load_opts;

/* Parses one option at argv[*i] (advancing *i past its value).  Returns 1
 * when consumed, 0 when not one of these, or -1 after printing a usage
 * error. */
int cli_load_opt(const char *cmd, int argc, char **argv, int *i, cli_load_opts *o);
void cli_load_opts_init(cli_load_opts *o);
/* Help text lines for the shared options. */
extern const char cli_load_opts_help[];

/* Progress callback drawing a bar on stderr (user: unused). */
void cli_progress_bar(void *user, const char *component, uint64_t done, uint64_t total);
void cli_progress_done(void);

/* SIGINT/SIGTERM set *flag (and print nothing); restored by the caller's exit. */
void cli_install_cancel(volatile int *flag);

#endif
