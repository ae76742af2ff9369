/* core.c — refcounted owners of the library's handles.
 *
 * Python frees objects in whatever order it likes, and a DLPack consumer
 * (torch, numpy) runs a tensor's deleter whenever it drops the tensor, on
 * any thread, with or without the GIL.  So the handles live in these small
 * C structs with atomic reference counts: the last reference to a load
 * closes it (arenas freed), then drops its runtime, whose last reference
 * closes the runtime.  Nothing here touches a Python object.
 *
 * Each export holds its component in the library (hoist_loaded_hold), so
 * that releasing an offloaded component whose tensors are still exported
 * is refused with HOIST_BUSY instead of freeing memory under them; the
 * library is the one authority on that.  The count kept here only says
 * how many exports are alive (Loaded.components, the Busy message). */
#include "hoist_py.h"

#include <stdlib.h>
#include <string.h>

static void free_log(hp_log_line *lines, size_t n) {
  for (size_t k = 0; k < n; k++) free(lines[k].text);
  free(lines);
}

static void queue_log(void *user, hoist_log_level level, const char *message) {
  hp_runtime *r = user;
  pthread_mutex_lock(&r->log_lock);
  char *text = r->nlog < HP_LOG_MAX ? strdup(message) : NULL;
  if (text != NULL) {
    r->log[r->nlog].level = (int)level;
    r->log[r->nlog].text = text;
    r->nlog++;
  } else {
    r->log_dropped++;
  }
  pthread_mutex_unlock(&r->log_lock);
}

int hp_runtime_new(const hoist_config *cfg, hp_runtime **out) {
  *out = NULL;
  hp_runtime *r = calloc(1, sizeof *r);
  hp_log_line *log = calloc(HP_LOG_MAX, sizeof *log);
  if (r == NULL || log == NULL || pthread_mutex_init(&r->log_lock, NULL) != 0) {
    free(r);
    free(log);
    return HOIST_NO_MEMORY;
  }
  r->log = log;
  hoist_config c = *cfg;
  c.log_fn = queue_log;
  c.log_user = r;
  int rc = hoist_runtime_create(&c, &r->rt);
  if (rc != HOIST_OK) {
    free_log(r->log, r->nlog);
    pthread_mutex_destroy(&r->log_lock);
    free(r);
    return rc;
  }
  atomic_init(&r->refs, 1);
  *out = r;
  return HOIST_OK;
}

void hp_runtime_take_log(hp_runtime *r, hp_log_line **lines, size_t *n, size_t *dropped) {
  pthread_mutex_lock(&r->log_lock);
  hp_log_line *fresh = calloc(HP_LOG_MAX, sizeof *fresh);
  if (fresh == NULL) { /* keep the lines for a later drain */
    *lines = NULL;
    *n = *dropped = 0;
    pthread_mutex_unlock(&r->log_lock);
    return;
  }
  *lines = r->log;
  *n = r->nlog;
  *dropped = r->log_dropped;
  r->log = fresh;
  r->nlog = r->log_dropped = 0;
  pthread_mutex_unlock(&r->log_lock);
}


void hp_runtime_ref(hp_runtime *r) { atomic_fetch_add(&r->refs, 1); }

void hp_runtime_unref(hp_runtime *r) {
  if (r == NULL || atomic_fetch_sub(&r->refs, 1) != 1) return;
  hoist_runtime_close(r->rt);
  free_log(r->log, r->nlog);
  pthread_mutex_destroy(&r->log_lock);
  free(r);
}

hp_loaded *hp_loaded_new(hp_runtime *owner, hoist_pipeline *p, hoist_loaded *l) {
  hp_loaded *h = malloc(sizeof *h);
  size_t n = hoist_loaded_component_count(l);
  atomic_size_t *exports = malloc((n > 0 ? n : 1) * sizeof *exports);
  if (h == NULL || exports == NULL) {
    free(h);
    free(exports);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) atomic_init(&exports[i], 0);
  atomic_init(&h->refs, 1);
  hp_runtime_ref(owner);
  h->owner = owner;
  h->p = p;
  h->l = l;
  h->ncomps = n;
  h->exports = exports;
  return h;
}

void hp_loaded_ref(hp_loaded *h) { atomic_fetch_add(&h->refs, 1); }

void hp_loaded_unref(hp_loaded *h) {
  if (h == NULL || atomic_fetch_sub(&h->refs, 1) != 1) return;
  /* The load before its pipeline, both before the runtime. */
  hoist_loaded_close(h->l);
  hoist_pipeline_close(h->p);
  hp_runtime_unref(h->owner);
  free(h->exports);
  free(h);
}

int hp_hold(hp_loaded *h, size_t i) {
  int rc = hoist_loaded_hold(h->l, i);
  if (rc != HOIST_OK) return rc;
  hp_loaded_ref(h);
  atomic_fetch_add(&h->exports[i], 1);
  return HOIST_OK;
}

void hp_unhold(hp_loaded *h, size_t i) {
  atomic_fetch_sub(&h->exports[i], 1);
  hoist_loaded_unhold(h->l, i);
  hp_loaded_unref(h);
}

size_t hp_exports(const hp_loaded *h, size_t i) {
  return atomic_load(&((hp_loaded *)h)->exports[i]);
}
