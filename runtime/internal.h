/* internal.h — helpers every runtime module shares: error recording, logging,
 * checked size arithmetic.  Not installed; nothing here is exported. */
#ifndef HOIST_INTERNAL_H
#define HOIST_INTERNAL_H

#include "hoist.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#if defined(__GNUC__)
#define HOIST_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define HOIST_PRINTF(a, b)
#endif

#define HOIST_ERROR_MAX 1024

/* Records a detail message for rt (or, for rt == NULL, the calling thread)
 * and returns status, so that call sites read `return hoist__fail(...)`. */
int hoist__fail(hoist_runtime *rt, int status, const char *fmt, ...) HOIST_PRINTF(3, 4);
int hoist__failv(hoist_runtime *rt, int status, const char *fmt, va_list ap);

/* The calling thread's most recent hoist__fail message, whatever runtime it
 * went to ("" when none). */
const char *hoist__thread_last_error(void);

/* Logs through rt's callback when level is enabled; rt may be NULL. */
void hoist__log(hoist_runtime *rt, hoist_log_level level, const char *fmt, ...)
    HOIST_PRINTF(3, 4);

/* Checked arithmetic: false on overflow, *out untouched then. */
static inline bool hoist__add_u64(uint64_t a, uint64_t b, uint64_t *out) {
  return !__builtin_add_overflow(a, b, out);
}
static inline bool hoist__mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}
/* Round x up to a multiple of align (a power of two); false on overflow. */
static inline bool hoist__round_up_u64(uint64_t x, uint64_t align, uint64_t *out) {
  uint64_t t;
  if (!hoist__add_u64(x, align - 1, &t)) return false;
  *out = t & ~(align - 1);
  return true;
}

/* Duplicates a string with malloc; NULL on NULL or allocation failure. */
char *hoist__strdup(const char *s);

#endif /* HOIST_INTERNAL_H */
