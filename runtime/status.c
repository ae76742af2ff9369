/* status.c — status codes, dtype table, error details and logging.
 *
 * The status and dtype tables are generated from the X-macro lists in
 * hoist.h so that the enum, the names and the sentences never drift apart.
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

static const struct {
  const char *name;
  unsigned bits;
} dtype_table[HOIST_DTYPE_COUNT_] = {
#define HOIST_DTYPE_ROW_(name, bits) {#name, bits},
    HOIST_DTYPE_MAP(HOIST_DTYPE_ROW_)
#undef HOIST_DTYPE_ROW_
};

const char *hoist_dtype_name(hoist_dtype dtype) {
  if ((unsigned)dtype >= HOIST_DTYPE_COUNT_) return NULL;
  return dtype_table[dtype].name;
}

unsigned hoist_dtype_bits(hoist_dtype dtype) {
  if ((unsigned)dtype >= HOIST_DTYPE_COUNT_) return 0;
  return dtype_table[dtype].bits;
}

int hoist_dtype_from_name(const char *name, size_t len, hoist_dtype *out) {
  if (name == NULL) return HOIST_BAD_DTYPE;
  for (unsigned i = 0; i < HOIST_DTYPE_COUNT_; i++) {
    if (strlen(dtype_table[i].name) == len && memcmp(dtype_table[i].name, name, len) == 0) {
      *out = (hoist_dtype)i;
      return HOIST_OK;
    }
  }
  return HOIST_BAD_DTYPE;
}

static _Thread_local char thread_error[HOIST_ERROR_MAX];
/* Every failure recorded by this thread, with or without a runtime: lets a
 * worker hand its own message on when another thread fails after it. */
static _Thread_local char thread_last[HOIST_ERROR_MAX];

int hoist__failv(hoist_runtime *rt, int status, const char *fmt, va_list ap) {
  char msg[HOIST_ERROR_MAX];
  vsnprintf(msg, sizeof msg, fmt, ap);
  memcpy(thread_last, msg, sizeof msg);
  if (rt == NULL) {
    memcpy(thread_error, msg, sizeof msg);
    return status;
  }
  uv_mutex_lock(&rt->lock);
  memcpy(rt->error, msg, sizeof msg);
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

const char *hoist__thread_last_error(void) { return thread_last; }

const char *hoist_last_error(const hoist_runtime *rt) {
  return rt == NULL ? thread_error : rt->error;
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
