/* status.c — status codes, error details, the one-line quoting of names
 * in them, and logging.
 *
 * The status table is generated from the X-macro list in hoist.h so that
 * the enum, the names and the sentences never drift apart.
 * Error details live in the runtime (guarded by its mutex) or, for calls made
 * without a runtime, in a thread-local buffer. */
#include "runtime.h"

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

int hoist__failv(hoist_runtime *rt, int status, const char *fmt, va_list ap) {
  /* Formatted aside first: the arguments may be this thread's slot itself
   * (a detail recorded again, with a prefix or for another runtime). */
  char msg[HOIST_ERROR_MAX];
  vsnprintf(msg, sizeof msg, fmt, ap);
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

const char *hoist__show(const char *s, char buf[HOIST_SHOW_MAX]) {
  size_t i = 0, o = 0;
  for (; s[i] != '\0' && o < HOIST_SHOW_MAX - 10; i++) {
    unsigned char c = (unsigned char)s[i];
    buf[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
  }
  if (s[i] != '\0') {
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o] = '\0';
  return buf;
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
  vsnprintf(msg, sizeof msg, fmt, ap);
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
