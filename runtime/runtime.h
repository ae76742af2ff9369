/* runtime.h — the definition of struct hoist_runtime, shared by the modules
 * that need its backend, its lock or its error slot. */
#ifndef HOIST_RUNTIME_H
#define HOIST_RUNTIME_H

#include "internal.h"

#include <uv.h>

struct hoist__device;

struct hoist_runtime {
  uv_mutex_t lock;                /* guards error[] and the log fields */
  char error[HOIST_ERROR_MAX];    /* last failure detail */
  hoist_log_fn log_fn;
  void *log_user;
  hoist_log_level log_level;
  hoist_config cfg;               /* copy; cfg.device points at device_name */
  char *device_name;              /* owned */
  struct hoist__device *dev;       /* owned backend; NULL until created */
  struct hoist__engine *engine;    /* owned upload engine; made on the first load */
  uv_mutex_t load_lock;           /* one load or unload at a time */
};

#endif /* HOIST_RUNTIME_H */
