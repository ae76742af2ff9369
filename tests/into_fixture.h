/* into_fixture.h — targets for hoist_load_into in the load-into suites
 * (host: test_load_into.c, GPU: test_gpu_load_into.c): one buffer per
 * tensor of a component, each floating tensor (of the dtypes hoist
 * converts) in a chosen target dtype, the file's shape given; and the
 * check that every buffer holds the CPU reference conversion of the
 * file's bytes.  Host buffers are the test's own memory (aligned_alloc,
 * filled with a sentinel), device buffers come from the device outside
 * any load.  Header-only (static functions), as convert_fixture.h. */
#ifndef HOIST_INTO_FIXTURE_H
#define HOIST_INTO_FIXTURE_H

#include "convert_fixture.h"

#define IF_SENTINEL 0xEE
#define IF_MAX_FILES 8

typedef struct if_set {
  hoist_file *files[IF_MAX_FILES];
  size_t nfiles;
  hoist_load_target *t;           /* n targets */
  const hoist_tensor_info **src;  /* the file's view of each target's tensor */
  hoist_file **file_of;
  size_t n;
  int on_device;                  /* buffers from hoist__device_alloc */
} if_set;

/* The component named component of p (failing the test when absent). */
static inline const hoist_component_info *if_component(const hoist_pipeline *p,
                                                      const char *component) {
  for (size_t i = 0; i < hoist_pipeline_component_count(p); i++)
    if (strcmp(hoist_pipeline_component(p, i)->name, component) == 0)
      return hoist_pipeline_component(p, i);
  ck_abort_msg("no component %s", component);
  return NULL;
}

/* Targets for every tensor of component: floating ones hoist converts in
 * target (HOIST_DTYPE_COUNT_: their own dtype), others in theirs. */
static inline void if_build(hoist_runtime *rt, const hoist_pipeline *p, const char *component,
                            hoist_dtype target, int on_device, if_set *s) {
  memset(s, 0, sizeof *s);
  s->on_device = on_device;
  const hoist_component_info *ci = if_component(p, component);
  ck_assert_uint_le(ci->file_count, IF_MAX_FILES);
  size_t n = 0;
  for (size_t f = 0; f < ci->file_count; f++) {
    ck_assert_int_eq(hoist_file_open(rt, ci->files[f], &s->files[f]), HOIST_OK);
    n += hoist_file_tensor_count(s->files[f]);
  }
  s->nfiles = ci->file_count;
  s->t = calloc(n + 1, sizeof *s->t);
  s->src = calloc(n + 1, sizeof *s->src);
  s->file_of = calloc(n + 1, sizeof *s->file_of);
  ck_assert(s->t != NULL && s->src != NULL && s->file_of != NULL);
  for (size_t f = 0; f < s->nfiles; f++)
    for (size_t k = 0; k < hoist_file_tensor_count(s->files[f]); k++) {
      const hoist_tensor_info *ti = hoist_file_tensor(s->files[f], k);
      hoist_dtype to = target != HOIST_DTYPE_COUNT_ && cf_is_float(ti->dtype) ? target : ti->dtype;
      uint64_t bytes = to == ti->dtype ? ti->nbytes : ti->nelements * (hoist_dtype_bits(to) / 8);
      uint64_t addr = 0;
      if (bytes > 0 && on_device) {
        ck_assert_int_eq(hoist__device_alloc(rt, bytes, &addr), HOIST_OK);
      } else if (bytes > 0) {
        void *b = aligned_alloc(256, (bytes + 255) / 256 * 256);
        ck_assert_ptr_nonnull(b);
        memset(b, IF_SENTINEL, (size_t)bytes);
        addr = (uint64_t)(uintptr_t)b;
      }
      s->t[s->n] = (hoist_load_target){ti->name, addr, bytes, to, ti->ndim, ti->shape};
      s->src[s->n] = ti;
      s->file_of[s->n] = s->files[f];
      s->n++;
    }
}

/* Every target holds hoist__convert_ref of its tensor's file bytes. */
static inline void if_check(hoist_runtime *rt, const if_set *s) {
  for (size_t i = 0; i < s->n; i++) {
    const hoist_tensor_info *ti = s->src[i];
    const hoist_load_target *x = &s->t[i];
    unsigned char *src = malloc(ti->nbytes + 1), *want = malloc(x->nbytes + 1),
                  *got = malloc(x->nbytes + 1);
    ck_assert(src != NULL && want != NULL && got != NULL);
    hoist_file *f = s->file_of[i];
    ck_assert_int_eq(hoist_file_read(f, hoist_file_data_offset(f) + ti->begin, src,
                                     (size_t)ti->nbytes),
                     HOIST_OK);
    if (x->dtype == ti->dtype)
      memcpy(want, src, (size_t)ti->nbytes);
    else
      ck_assert_int_eq(hoist__convert_ref(want, x->dtype, src, ti->dtype, ti->nelements), HOIST_OK);
    if (x->nbytes > 0 && s->on_device)
      ck_assert_int_eq(rt->dev->ops->copy_d2h(rt->dev, got, x->addr, (size_t)x->nbytes), HOIST_OK);
    else if (x->nbytes > 0)
      memcpy(got, (const void *)(uintptr_t)x->addr, (size_t)x->nbytes);
    ck_assert_msg(memcmp(got, want, (size_t)x->nbytes) == 0, "%s (%s -> %s) differs", ti->name,
                  hoist_dtype_name(ti->dtype), hoist_dtype_name(x->dtype));
    free(src);
    free(want);
    free(got);
  }
}

/* Whether target i (host buffers) still holds only the sentinel. */
static inline int if_untouched(const if_set *s, size_t i) {
  const unsigned char *b = (const unsigned char *)(uintptr_t)s->t[i].addr;
  for (uint64_t k = 0; k < s->t[i].nbytes; k++)
    if (b[k] != IF_SENTINEL) return 0;
  return 1;
}

/* The index of the target of tensor name. */
static inline size_t if_find(const if_set *s, const char *name) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->t[i].tensor, name) == 0) return i;
  ck_abort_msg("no target %s", name);
  return 0;
}

/* The targets of s whose tensor name starts with prefix, except the one
 * named but (may be NULL), in a set of their own that borrows s's buffers
 * and files: free it with if_subset_free. */
static inline void if_subset(const if_set *s, const char *prefix, const char *but,
                             if_set *out) {
  *out = *s;
  out->t = calloc(s->n + 1, sizeof *out->t);
  out->src = calloc(s->n + 1, sizeof *out->src);
  out->file_of = calloc(s->n + 1, sizeof *out->file_of);
  ck_assert(out->t != NULL && out->src != NULL && out->file_of != NULL);
  out->n = 0;
  for (size_t i = 0; i < s->n; i++) {
    if (strncmp(s->t[i].tensor, prefix, strlen(prefix)) != 0) continue;
    if (but != NULL && strcmp(s->t[i].tensor, but) == 0) continue;
    out->t[out->n] = s->t[i];
    out->src[out->n] = s->src[i];
    out->file_of[out->n] = s->file_of[i];
    out->n++;
  }
}

static inline void if_subset_free(if_set *sub) {
  free(sub->t);
  free(sub->src);
  free(sub->file_of);
  memset(sub, 0, sizeof *sub);
}

static inline void if_free(hoist_runtime *rt, if_set *s) {
  for (size_t i = 0; i < s->n; i++) {
    if (s->t[i].nbytes == 0) continue;
    if (s->on_device) hoist__device_free(rt, s->t[i].addr);
    else free((void *)(uintptr_t)s->t[i].addr);
  }
  for (size_t f = 0; f < s->nfiles; f++) hoist_file_close(s->files[f]);
  free(s->t);
  free(s->src);
  free(s->file_of);
  memset(s, 0, sizeof *s);
}

#endif
