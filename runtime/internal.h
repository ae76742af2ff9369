/* internal.h — what every runtime module shares: hoist_tools.h (error
 * recording, checked size arithmetic, the internals the CLI uses) and
 * logging.  Not installed; nothing here is exported. */
#ifndef HOIST_INTERNAL_H
#define HOIST_INTERNAL_H

#include "hoist.h"
#include "hoist_tools.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

/* Records a detail message, as hoist_fail (hoist_tools.h) does. */
int hoist_failv(hoist_runtime *rt, int status, const char *fmt, va_list ap);

/* The calling thread's most recent hoist_fail message, whatever runtime it
 * went to ("" when none). */
const char *hoist_thread_last_error(void);

/* Logs through rt's callback when level is enabled; rt may be NULL. */
void hoist_log(hoist_runtime *rt, hoist_log_level level, const char *fmt, ...)
    HOIST_PRINTF(3, 4);

#endif /* HOIST_INTERNAL_H */
