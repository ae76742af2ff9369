/* runtime.c — creation and teardown of a hoist_runtime: its lock, its log
 * callback and its device backend. */
#include "device.h"
#include "upload.h"

#include <stdlib.h>
#include <string.h>

int hoist_runtime_create(const hoist_config *cfg, hoist_runtime **out) {
  hoist_config defaults = HOIST_CONFIG_INIT;
  *out = NULL;
  if (cfg == NULL) cfg = &defaults;
  if (cfg->struct_size != sizeof(hoist_config))
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT,
                      "hoist_config.struct_size is %u, expected %zu (use HOIST_CONFIG_INIT)",
                      cfg->struct_size, sizeof(hoist_config));
  hoist_runtime *rt = calloc(1, sizeof *rt);
  if (rt == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory creating a runtime");
  if (uv_mutex_init(&rt->lock) != 0) {
    free(rt);
    return hoist__fail(NULL, HOIST_NO_MEMORY, "cannot create a mutex");
  }
  if (uv_mutex_init(&rt->load_lock) != 0) {
    uv_mutex_destroy(&rt->lock);
    free(rt);
    return hoist__fail(NULL, HOIST_NO_MEMORY, "cannot create a mutex");
  }
  rt->cfg = *cfg;
  rt->log_fn = cfg->log_fn;
  rt->log_user = cfg->log_user;
  rt->log_level = cfg->log_level;
  rt->device_name = hoist__strdup(cfg->device != NULL ? cfg->device : "host");
  int rc = HOIST_OK;
  if (rt->device_name == NULL) {
    rc = hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory creating a runtime");
    goto fail;
  }
  rt->cfg.device = rt->device_name;
  rc = hoist__device_open(rt, rt->device_name, cfg->capacity, &rt->dev);
  if (rc != HOIST_OK) {
    /* The detail went to rt; hand it to the thread before rt goes away. */
    hoist__fail(NULL, rc, "%s", rt->error);
    goto fail;
  }
  *out = rt;
  return HOIST_OK;
fail:
  free(rt->device_name);
  uv_mutex_destroy(&rt->load_lock);
  uv_mutex_destroy(&rt->lock);
  free(rt);
  return rc;
}

void hoist_runtime_close(hoist_runtime *rt) {
  if (rt == NULL) return;
  hoist__engine_destroy(rt->engine);
  hoist__device_close(rt->dev);
  free(rt->device_name);
  uv_mutex_destroy(&rt->load_lock);
  uv_mutex_destroy(&rt->lock);
  free(rt);
}
