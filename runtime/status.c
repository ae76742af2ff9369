/* status.c — status codes, error details, the one-line quoting of names
 * in them, and logging.
 *
 * The status table is generated from the X-macro list in hoist.h so that
 * the enum, the names and the sentences never drift apart.
 * Error details are per thread, as errno is: one thread-local slot, written
 * by every failing call whatever runtime it was given (hoist.h,
 * "Threading").  The runtime's mutex guards only its log callback. */
#include "runtime.h"
#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *hoist_version(void) { return "0.1.0"; }

const char *hoist_strerror(int status) {
  switch (status) {
#define HOIST_STATUS_TEXT_(name, code, text) \
  case code:                                 \
    return text;
    HOIST_STATUS_MAP(HOIST_STATUS_TEXT_)
#undef HOIST_STATUS_TEXT_
  default:
    return "unknown status";
  }
}

const char *hoist_status_name(int status) {
  switch (status) {
#define HOIST_STATUS_NAME_(name, code, text) \
  case code:                                 \
    return #name;
    HOIST_STATUS_MAP(HOIST_STATUS_NAME_)
#undef HOIST_STATUS_NAME_
  default:
    return "UNKNOWN";
  }
}

static _Thread_local char thread_error[HOIST_ERROR_MAX];

/* Formats a message and shows it through hoist__show: the last guard of the
 * one-line rule.  Names and paths from files are escaped where they are
 * formatted; any that were not still cannot break a line or drive a
 * terminal.  Formatted aside first: the arguments may be this thread's slot
 * itself (a detail recorded again, with a prefix or for another runtime). */
static void format_line(char msg[HOIST_ERROR_MAX], const char *fmt, va_list ap) HOIST_PRINTF(2, 0);
static void format_line(char msg[HOIST_ERROR_MAX], const char *fmt, va_list ap) {
  char raw[HOIST_ERROR_MAX];
  vsnprintf(raw, sizeof raw, fmt, ap);
  hoist__show(raw, msg, HOIST_ERROR_MAX);
}

int hoist__failv(hoist_runtime *rt, int status, const char *fmt, va_list ap) {
  char msg[HOIST_ERROR_MAX];
  format_line(msg, fmt, ap);
  memcpy(thread_error, msg, sizeof msg);
  if (rt == NULL) return status;
  uv_mutex_lock(&rt->lock);
  hoist_log_fn fn = rt->log_fn;
  void *user = rt->log_user;
  bool debug = rt->log_level >= HOIST_LOG_DEBUG;
  uv_mutex_unlock(&rt->lock);
  /* Failures are returned to the caller, who decides whether they matter;
   * they are logged only at debug level to avoid double reporting. */
  if (fn != NULL && debug) fn(user, HOIST_LOG_DEBUG, msg);
  return status;
}

int hoist__fail(hoist_runtime *rt, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = hoist__failv(rt, status, fmt, ap);
  va_end(ap);
  return rc;
}

const char *hoist__thread_last_error(void) { return thread_error; }

/* rt is not read: the detail is the calling thread's (see the top). */
const char *hoist_last_error(const hoist_runtime *rt) {
  (void)rt;
  return thread_error;
}

void hoist__log(hoist_runtime *rt, hoist_log_level level, const char *fmt, ...) {
  if (rt == NULL) return;
  uv_mutex_lock(&rt->lock);
  hoist_log_fn fn = rt->log_fn;
  void *user = rt->log_user;
  bool enabled = level <= rt->log_level;
  uv_mutex_unlock(&rt->lock);
  if (fn == NULL || !enabled) return;
  char msg[HOIST_ERROR_MAX];
  va_list ap;
  va_start(ap, fmt);
  format_line(msg, fmt, ap);
  va_end(ap);
  fn(user, level, msg);
}

void hoist_log_set(hoist_runtime *rt, hoist_log_fn fn, void *user, hoist_log_level level) {
  if (rt == NULL) return;
  uv_mutex_lock(&rt->lock);
  rt->log_fn = fn;
  rt->log_user = user;
  rt->log_level = level;
  uv_mutex_unlock(&rt->lock);
}

char *hoist__strdup(const char *s) {
  if (s == NULL) return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d != NULL) memcpy(d, s, n);
  return d;
}
