/* cli_load_opts.h — the options `hoist load` and `hoist bench load` share
 * (device, capacity, threads, chunk, ring, read mode, residency, dtype
 * conversion, verification) and the
 * progress bar drawn on stderr. */
#ifndef HOIST_CLI_LOAD_OPTS_H
#define HOIST_CLI_LOAD_OPTS_H

#include "cli.h"
#include "cli_group.h"

/* The most --tensors patterns one command takes. */
#define CLI_MAX_TENSOR_PATTERNS 256

typedef struct cli_load_opts {
  hoist_config cfg;
  hoist_load_options load;
  const char *variant;
  /* --manifest FILE, taken only where the command sets manifest_ok (the
   * others refuse it as an unknown option); cli_load_manifest reads it
   * into load.manifest, cli_load_opts_free frees it. */
  int manifest_ok;
  const char *manifest_path;
  hoist_manifest *manifest;
  int json;
  int progress_bar; /* stderr is a terminal and not --json */
  char dtype_for[2048]; /* --dtype-for entries joined with commas (load.dtype_for) */
  /* --tensors patterns (load.tensors): the texts of every --tensors value,
   * split at commas, and the NULL-terminated list pointing into them. */
  char tensors_text[4096];
  size_t tensors_used;
  const char *tensor_patterns[CLI_MAX_TENSOR_PATTERNS + 1];
  size_t npatterns;
  cli_group_opts group; /* other ranks (cli_group.h) */
} cli_load_opts;

/* Parses one option at argv[*i] (advancing *i past its value).  Returns 1
 * when consumed, 0 when not one of these, or -1 after printing a usage
 * error. */
int cli_load_opt(const char *cmd, int argc, char **argv, int *i, cli_load_opts *o);
void cli_load_opts_init(cli_load_opts *o);
/* Help text lines for the shared options, and for --manifest. */
extern const char cli_load_opts_help[];
extern const char cli_manifest_opt_help[];

/* Reads --manifest's file into o->load.manifest (nothing without one).
 * Returns HOIST_EXIT_OK, or the exit code after printing the error (a
 * malformed or oversized file: 3). */
int cli_load_manifest(const char *cmd, cli_load_opts *o);
/* Frees what the options hold (the manifest). */
void cli_load_opts_free(cli_load_opts *o);

/* Progress callback drawing a bar on stderr (user: unused). */
void cli_progress_bar(void *user, const char *component, uint64_t done, uint64_t total);
void cli_progress_done(void);

/* Device memory peak of a load, sampled with the backend's mem_info from
 * the progress callback (every call; the engine serializes them) and
 * relative to what was in use when cli_device_peak_start ran.  Progress is
 * forwarded to chain when set. */
typedef struct cli_device_peak {
  hoist_runtime *rt;
  uint64_t base_used;
  uint64_t peak_used;
  hoist_progress_fn chain;
  void *chain_user;
} cli_device_peak;

void cli_device_peak_start(cli_device_peak *pk, hoist_runtime *rt);
void cli_device_peak_progress(void *user, const char *component, uint64_t done, uint64_t total);
/* Bytes above the start's use at the highest sample (0 when none). */
uint64_t cli_device_peak_bytes(const cli_device_peak *pk);

/* The library names the hoist_load_options field a message is about in
 * backquotes (`dtype_for`); the CLI says the flag that sets it
 * (--dtype-for).  Copies message into buf (size bytes) with every such
 * field replaced; returns buf. */
const char *cli_flag_message(const char *message, char *buf, size_t size);
/* Whether name is a conversion target of --dtype (bf16, f16, f32, any
 * case), as the library reads hoist_load_options.dtype. */
bool cli_dtype_target(const char *name);
/* cli_report in the CLI's words: the detail with cli_flag_message. */
int cli_load_report(const char *cmd, hoist_runtime *rt, int status);

/* SIGINT/SIGTERM set *flag (and print nothing); restored by the caller's exit. */
void cli_install_cancel(volatile int *flag);

#endif
