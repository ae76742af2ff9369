/* order.c — the memory-aware load order of a pipeline's components, and
 * the selection of components by name or group (offload, fsdp, dtype_for)
 * built on the same classifiers.
 *
 * A port of SGLang's component_loading_order.py.  Components sort ascending
 * by the key
 *   (-(inferred bytes or 0), risk_rank(load_name), variant_priority(load_name), index)
 * so that weight-heavy components load while device memory is still free,
 * and, among components of unknown size, DiTs come before text encoders,
 * image encoders, VAEs and then the rest (tokenizers, schedulers).
 *
 * Two deliberate differences from the Python, both about names the
 * reference would mishandle: only ASCII digits count as a numeric suffix
 * (Python's str.isdigit() also accepts "²", on which int() then raises), and
 * the variant priority is compared exactly on digit strings, so a suffix of
 * any length orders as Python's unbounded integers would, with no overflow. */
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Names */

/* The digits of a trailing "_<ASCII digits>" of name: *digits points at
 * them and the return value is their count; 0 when there is no such suffix
 * (no '_', nothing after the last '_', or a non-digit after it). */
static size_t numeric_suffix(const char *name, const char **digits) {
  const char *us = strrchr(name, '_');
  *digits = NULL;
  if (us == NULL || us[1] == '\0') return 0;
  const char *p = us + 1;
  for (const char *q = p; *q != '\0'; q++)
    if (*q < '0' || *q > '9') return 0;
  *digits = p;
  return strlen(p);
}

size_t hoist__component_base_len(const char *name) {
  const char *digits;
  if (numeric_suffix(name, &digits) > 0) return (size_t)(digits - 1 - name);
  return strlen(name);
}

static bool equals(const char *s, size_t len, const char *lit) {
  return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

static bool in_set(const char *s, size_t len, const char *const *set) {
  for (size_t i = 0; set[i] != NULL; i++)
    if (equals(s, len, set[i])) return true;
  return false;
}

static const char *const dit_names[] = {"transformer", "transformer_2", "video_dit",
                                        "video_dit_2", "audio_dit", "dual_tower_bridge",
                                        NULL};
static const char *const vae_names[] = {"vae",     "video_vae",         "audio_vae",
                                        "vocoder", "spatial_upsampler", "condition_image_encoder",
                                        NULL};

static bool is_dit_n(const char *s, size_t len) { return in_set(s, len, dit_names); }
static bool is_vae_n(const char *s, size_t len) { return in_set(s, len, vae_names); }
static bool is_image_encoder_n(const char *s, size_t len) {
  return equals(s, len, "image_encoder");
}
static bool is_text_encoder_n(const char *s, size_t len) {
  static const char te[] = "text_encoder";
  const size_t n = sizeof te - 1;
  if (len < n) return false;
  return memcmp(s, te, n) == 0 || memcmp(s + len - n, te, n) == 0;
}

/* The reference checks (name, base name) with any() per class. */
typedef bool (*class_fn)(const char *s, size_t len);
static bool name_or_base(const char *name, class_fn fn) {
  size_t len = strlen(name), base = hoist__component_base_len(name);
  return fn(name, len) || (base != len && fn(name, base));
}

bool hoist__component_is_dit(const char *name) { return name_or_base(name, is_dit_n); }
bool hoist__component_is_text_encoder(const char *name) {
  return name_or_base(name, is_text_encoder_n);
}
bool hoist__component_is_image_encoder(const char *name) {
  return name_or_base(name, is_image_encoder_n);
}
bool hoist__component_is_vae(const char *name) { return name_or_base(name, is_vae_n); }

int hoist__component_risk_rank(const char *name) {
  if (hoist__component_is_dit(name)) return 0;
  if (hoist__component_is_text_encoder(name)) return 1;
  if (hoist__component_is_image_encoder(name)) return 2;
  if (hoist__component_is_vae(name)) return 3;
  return 10;
}

/* ---- Selection */

static bool in_group(const char *group, const char *name) {
  if (strcmp(group, "all") == 0) return true;
  if (strcmp(group, "dit") == 0) return hoist__component_is_dit(name);
  if (strcmp(group, "text_encoder") == 0) return hoist__component_is_text_encoder(name);
  if (strcmp(group, "image_encoder") == 0) return hoist__component_is_image_encoder(name);
  if (strcmp(group, "vae") == 0) return hoist__component_is_vae(name);
  return false;
}

bool hoist__component_selected_by(const char *item, const char *name, const char *load_name) {
  /* An item selects the component of that name and, when it is also a
   * group name (text_encoder, vae), every component of the group. */
  return strcmp(name, item) == 0 || in_group(item, load_name);
}

int hoist__component_select(hoist_runtime *rt, const char *what, const char *list,
                           const hoist_component_info *const *infos, size_t n,
                           unsigned char *mark) {
  if (list == NULL || list[0] == '\0') return HOIST_OK;
  const char *p = list;
  while (*p != '\0') {
    const char *comma = strchr(p, ',');
    size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
    char item[128];
    if (len == 0 || len >= sizeof item)
      return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "`%s`: empty or overlong entry in '%s'", what,
                        list);
    memcpy(item, p, len);
    item[len] = '\0';
    bool matched = false;
    for (size_t i = 0; i < n; i++) {
      if (hoist__component_selected_by(item, infos[i]->name, infos[i]->load_name)) {
        mark[i] = 1;
        matched = true;
      }
    }
    if (!matched)
      return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                        "`%s` %s: no component or group of that name (groups: dit, "
                        "text_encoder, image_encoder, vae, all)",
                        what, item);
    p += len;
    if (*p == ',') p++;
  }
  return HOIST_OK;
}

/* ---- Variant priority */

/* The suffix number N without leading zeros: *digits/return as in
 * numeric_suffix, with 0 meaning N == 0 or no suffix. */
static size_t suffix_number(const char *name, const char **digits) {
  size_t n = numeric_suffix(name, digits);
  while (n > 0 && **digits == '0') {
    (*digits)++;
    n--;
  }
  return n;
}

void hoist__component_variant_priority(const char *name, int64_t *value, char *text,
                                      size_t text_size) {
  const char *d;
  size_t n = suffix_number(name, &d);
  if (n == 0) {
    *value = 0;
    if (text_size > 0) snprintf(text, text_size, "0");
    return;
  }
  /* 9223372036854775808 is the magnitude of INT64_MIN: anything above it
   * saturates; the text stays exact. */
  static const char lim[] = "9223372036854775808";
  if (n > sizeof lim - 1 || (n == sizeof lim - 1 && memcmp(d, lim, n) >= 0)) {
    *value = INT64_MIN;
  } else {
    uint64_t m = 0;
    for (size_t i = 0; i < n; i++) m = m * 10 + (uint64_t)(d[i] - '0');
    *value = -(int64_t)m;
  }
  if (text_size > 0) snprintf(text, text_size, "-%.*s", (int)n, d);
}

/* Compares the variant priorities -N_a and -N_b exactly. */
static int cmp_variant(const char *a, const char *b) {
  const char *da, *db;
  size_t na = suffix_number(a, &da), nb = suffix_number(b, &db);
  /* -N_a < -N_b  <=>  N_a > N_b. */
  if (na != nb) return na > nb ? -1 : 1;
  if (na == 0) return 0;
  int c = memcmp(da, db, na);
  return c > 0 ? -1 : (c < 0 ? 1 : 0);
}

int hoist__component_order_cmp(const hoist_component_info *a, const hoist_component_info *b) {
  uint64_t sa = a->has_size ? a->inferred_bytes : 0;
  uint64_t sb = b->has_size ? b->inferred_bytes : 0;
  if (sa != sb) return sa > sb ? -1 : 1; /* heavy first */
  int ra = hoist__component_risk_rank(a->load_name), rb = hoist__component_risk_rank(b->load_name);
  if (ra != rb) return ra < rb ? -1 : 1;
  int v = cmp_variant(a->load_name, b->load_name);
  if (v != 0) return v;
  if (a->index != b->index) return a->index < b->index ? -1 : 1;
  return 0;
}

/* ---- Sort: a merge sort (stable), with an insertion sort when the scratch
 * buffer cannot be had. */

static void insertion_sort(const hoist_component_info **v, size_t n) {
  for (size_t i = 1; i < n; i++) {
    const hoist_component_info *x = v[i];
    size_t j = i;
    while (j > 0 && hoist__component_order_cmp(v[j - 1], x) > 0) {
      v[j] = v[j - 1];
      j--;
    }
    v[j] = x;
  }
}

void hoist__component_sort(const hoist_component_info **infos, size_t n) {
  if (n < 2) return;
  const hoist_component_info **tmp = malloc(n * sizeof *tmp);
  if (tmp == NULL) {
    insertion_sort(infos, n);
    return;
  }
  const hoist_component_info **src = infos, **dst = tmp;
  for (size_t width = 1; width < n; width *= 2) {
    for (size_t lo = 0; lo < n; lo += 2 * width) {
      size_t mid = lo + width < n ? lo + width : n;
      size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
      size_t i = lo, j = mid, k = lo;
      while (i < mid && j < hi) dst[k++] = hoist__component_order_cmp(src[j], src[i]) < 0 ? src[j++] : src[i++];
      while (i < mid) dst[k++] = src[i++];
      while (j < hi) dst[k++] = src[j++];
    }
    const hoist_component_info **t = src;
    src = dst;
    dst = t;
  }
  if (src != infos) memcpy(infos, src, n * sizeof *infos);
  free(tmp);
}
