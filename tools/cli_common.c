/* cli_common.c — exit codes, option parsing, human units and JSON printing
 * shared by every subcommand of the hoist CLI. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

volatile sig_atomic_t cli_cancel_requested;

int cli_exit_code(int status) {
  if (status == HOIST_OK) return HOIST_EXIT_OK;
  /* After Ctrl-C, whatever failed failed because of it (an interrupted
   * system call, a load stopped between chunks): that is a cancellation. */
  if (status == HOIST_CANCELLED || cli_cancel_requested) return HOIST_EXIT_CANCELLED;
  if (status == HOIST_INVALID_ARGUMENT) return HOIST_EXIT_USAGE;
  if (status == HOIST_NOT_FOUND || status == HOIST_BAD_PATH) return HOIST_EXIT_INVALID_INPUT;
  if (status <= -20 && status > -70) return HOIST_EXIT_INVALID_INPUT; /* format, pipeline */
  if (status == HOIST_DEVICE_OOM || status == HOIST_ADMISSION) return HOIST_EXIT_NO_FIT;
  if (status == HOIST_NO_DEVICE || status == HOIST_DEVICE || status == HOIST_NO_NCCL)
    return HOIST_EXIT_DEVICE;
  if (status == HOIST_GROUP_MISMATCH) return HOIST_EXIT_INVALID_INPUT; /* ranks' inputs differ */
  return HOIST_EXIT_FAILURE;
}

int cli_report(const char *cmd, hoist_runtime *rt, int status) {
  const char *detail = hoist_last_error(rt);
  if (detail == NULL || detail[0] == '\0') detail = hoist_strerror(status);
  if (status != HOIST_CANCELLED && cli_cancel_requested)
    fprintf(stderr, "hoist %s: cancelled\n", cmd);
  else
    fprintf(stderr, "hoist %s: %s\n", cmd, detail);
  return cli_exit_code(status);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "hoist %s: ", cmd);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see hoist %s --help)\n", cmd);
  return HOIST_EXIT_USAGE;
}

bool cli_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out) {
  if (text == NULL || text[0] < '0' || text[0] > '9') return false;
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max) return false;
  *out = v;
  return true;
}

bool cli_parse_bytes(const char *text, uint64_t *out) {
  if (text == NULL || text[0] < '0' || text[0] > '9') return false;
  errno = 0;
  char *end = NULL;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno != 0) return false;
  static const struct {
    const char *suffix;
    uint64_t mult;
  } units[] = {
      {"", 1},
      {"B", 1},
      {"K", 1ull << 10},
      {"KiB", 1ull << 10},
      {"M", 1ull << 20},
      {"MiB", 1ull << 20},
      {"G", 1ull << 30},
      {"GiB", 1ull << 30},
      {"T", 1ull << 40},
      {"TiB", 1ull << 40},
      {"KB", 1000ull},
      {"MB", 1000ull * 1000},
      {"GB", 1000ull * 1000 * 1000},
      {"TB", 1000ull * 1000 * 1000 * 1000},
  };
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcmp(end, units[i].suffix) == 0) {
      uint64_t r;
      if (__builtin_mul_overflow((uint64_t)v, units[i].mult, &r) || r > CLI_MAX_BYTES) return false;
      *out = r;
      return true;
    }
  }
  return false;
}

const char *cli_human_bytes(uint64_t bytes, char buf[32]) {
  static const char *names[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  double v = (double)bytes;
  size_t u = 0;
  while (v >= 1000.0 && u + 1 < sizeof names / sizeof names[0]) {
    v /= 1000.0;
    u++;
  }
  if (u == 0)
    snprintf(buf, 32, "%" PRIu64 " B", bytes);
  else
    snprintf(buf, 32, "%.2f %s", v, names[u]);
  return buf;
}

bool cli_print_json(cJSON *root) {
  char *text = root != NULL ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  if (text == NULL) {
    fprintf(stderr, "hoist: out of memory printing JSON\n");
    return false;
  }
  fputs(text, stdout);
  fputc('\n', stdout);
  cJSON_free(text);
  return true;
}

double cli_now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int cli_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
