/* cli.h — what the hoist CLI's subcommands share: the exit-code contract,
 * option parsing, human units and JSON output. */
#ifndef HOIST_CLI_H
#define HOIST_CLI_H

#include "hoist.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes (docs/cli.md, "Conventions"). */
enum {
  HOIST_EXIT_OK = 0,
  HOIST_EXIT_FAILURE = 1,
  HOIST_EXIT_USAGE = 2,
  HOIST_EXIT_INVALID_INPUT = 3,
  HOIST_EXIT_NO_FIT = 4,
  HOIST_EXIT_DEVICE = 5,
  HOIST_EXIT_CANCELLED = 130
};

/* Set by the SIGINT/SIGTERM handler (cli_install_cancel).  Once set, any
 * failure is reported as a cancellation: exit 130, never "Interrupted
 * system call". */
extern volatile sig_atomic_t cli_cancel_requested;

/* Maps a library status to the CLI's exit code (HOIST_EXIT_CANCELLED for
 * any failure after a cancel signal). */
int cli_exit_code(int status);

/* Prints "hoist CMD: message" on stderr and returns the exit code for
 * status; the message is hoist_last_error(rt) when set, else the status
 * sentence, or "cancelled" for a failure after a cancel signal. */
int cli_report(const char *cmd, hoist_runtime *rt, int status);

/* Prints a usage error on stderr and returns HOIST_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* The largest byte count an option takes: 1 PiB, far above any memory or
 * file, and low enough that sums and products of a few such counts in the
 * tools cannot overflow 64 bits. */
#define CLI_MAX_BYTES (UINT64_C(1) << 50)

/* Parses a byte count: a plain integer or one with a K/M/G/T (powers of
 * 1024) or KB/MB/GB/TB (powers of 1000) suffix, e.g. "24G", "1.5GiB" is
 * rejected, "24GiB" accepted.  Returns false on junk, overflow or a count
 * above CLI_MAX_BYTES (callers make that a usage error, exit 2). */
bool cli_parse_bytes(const char *text, uint64_t *out);
/* Parses a non-negative integer within [min, max]. */
bool cli_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/* "23.80 GB"-style rendering (decimal units, as model sizes are quoted). */
const char *cli_human_bytes(uint64_t bytes, char buf[32]);

/* Prints a cJSON tree on stdout followed by a newline, then deletes it.
 * Returns false when printing failed (out of memory). */
bool cli_print_json(cJSON *root);

/* Monotonic clock in seconds, and a qsort comparator for doubles. */
double cli_now_seconds(void);
int cli_cmp_double(const void *a, const void *b);

/* Subcommands.  argv[0] is the subcommand name. */
int cmd_inspect(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_load(int argc, char **argv);
int cmd_shards(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_make_pipeline(int argc, char **argv);
int cmd_manifest(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif /* HOIST_CLI_H */
