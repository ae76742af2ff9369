/* filter.c — running a tensor filter over a pipeline before a load
 * (filter.h): glob patterns through fnmatch(3) with flags 0 (whole name,
 * case-sensitive, '*' crossing '.' and '/'), then the caller's callback on
 * what the patterns kept.  A pattern that matches nothing read is refused,
 * as an offload name that names no component is: a typo must not load
 * nothing quietly. */
#include "filter.h"

#include <fnmatch.h>
#include <stdlib.h>

bool hoist__filter_active(const hoist__filter *f) {
  return f != NULL && (f->patterns != NULL || f->fn != NULL);
}

void hoist__selection_free(hoist__selection *s) {
  if (s->flags != NULL)
    for (size_t i = 0; i < s->n; i++) free(s->flags[i]);
  free(s->flags);
  s->flags = NULL;
  s->n = 0;
}

const unsigned char *hoist__selection_of(const hoist__selection *s, size_t slot) {
  return s->flags != NULL && slot < s->n ? s->flags[slot] : NULL;
}

/* Whether some pattern matches name; marks the ones that do in hit. */
static bool patterns_match(const char *const *patterns, const char *name, unsigned char *hit) {
  bool any = false;
  for (size_t k = 0; patterns[k] != NULL; k++)
    if (fnmatch(patterns[k], name, 0) == 0) {
      hit[k] = 1;
      any = true;
    }
  return any;
}

/* Flags for the component at slot: its tensors that the patterns match
 * (all, without patterns) and the callback keeps. */
static int select_component(hoist_runtime *rt, const hoist_pipeline *p, const hoist__filter *f,
                            size_t slot, unsigned char *hit, unsigned char **out) {
  hoist_file *const *files = NULL;
  const size_t nfiles = hoist__pipeline_safetensors(p, slot, &files);
  const char *component = hoist_pipeline_component(p, slot)->name;
  size_t n = 0;
  for (size_t k = 0; k < nfiles; k++) n += hoist_file_tensor_count(files[k]);
  unsigned char *flags = calloc(n > 0 ? n : 1, 1);
  if (flags == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory selecting tensors");
  size_t i = 0;
  for (size_t k = 0; k < nfiles; k++)
    for (size_t t = 0; t < hoist_file_tensor_count(files[k]); t++, i++) {
      const char *name = hoist_file_tensor(files[k], t)->name;
      if (f->patterns != NULL && !patterns_match(f->patterns, name, hit)) continue;
      const int verdict = f->fn != NULL ? f->fn(f->user, component, name) : 1;
      if (verdict < 0) {
        char cb[HOIST_SHOW_NAME], tb[HOIST_SHOW_NAME];
        free(flags);
        return hoist__fail(rt, HOIST_CANCELLED, "`tensor_filter` stopped the load at %s/%s",
                           hoist__show(component, cb, sizeof cb), hoist__show(name, tb, sizeof tb));
      }
      flags[i] = verdict > 0;
    }
  *out = flags;
  return HOIST_OK;
}

int hoist__filter_select(hoist_runtime *rt, const hoist_pipeline *p, const hoist__filter *f,
                         size_t only, hoist__selection *out) {
  *out = (hoist__selection){0, NULL};
  if (!hoist__filter_active(f)) return HOIST_OK;
  size_t npatterns = 0;
  if (f->patterns != NULL) {
    while (f->patterns[npatterns] != NULL) npatterns++;
    if (npatterns == 0)
      return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                         "`tensors`: an empty pattern list selects no tensor");
  }
  const size_t n = hoist_pipeline_component_count(p);
  unsigned char *hit = calloc(npatterns > 0 ? npatterns : 1, 1);
  out->flags = calloc(n > 0 ? n : 1, sizeof *out->flags);
  out->n = n;
  int rc = hit == NULL || out->flags == NULL
               ? hoist__fail(rt, HOIST_NO_MEMORY, "out of memory selecting tensors")
               : HOIST_OK;
  for (size_t slot = 0; slot < n && rc == HOIST_OK; slot++)
    if (only == SIZE_MAX || slot == only)
      rc = select_component(rt, p, f, slot, hit, &out->flags[slot]);
  for (size_t k = 0; k < npatterns && rc == HOIST_OK; k++)
    if (!hit[k]) {
      char pb[HOIST_SHOW_NAME], wb[HOIST_SHOW_PATH];
      const char *where = only != SIZE_MAX ? hoist_pipeline_component(p, only)->name
                                           : hoist_pipeline_path(p);
      rc = hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                       "`tensors`: pattern '%s' matches no tensor of %s",
                       hoist__show(f->patterns[k], pb, sizeof pb),
                       hoist__show(where, wb, sizeof wb));
    }
  free(hit);
  if (rc != HOIST_OK) hoist__selection_free(out);
  return rc;
}
