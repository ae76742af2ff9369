/* fuzz_discover.c — libFuzzer entry for pipeline discovery and a verified
 * load on the host backend.
 *
 * An input is a small pipeline in one buffer:
 *
 *   byte 0      flags: bit 0 count and load floating tensors as bf16,
 *               bit 1 ask for the fp16 variant (the index and shards are
 *               then written under fp16 variant names), bit 2 offload every
 *               component (loaded into host copies, then prepared and
 *               released one by one)
 *   then parts separated by the 8 bytes "\n--8<--\n":
 *     part 0    model_index.json; empty: none, the folder is then a plain
 *               model folder holding the files below
 *     part 1    model.safetensors.index.json of the component (empty: none)
 *     part 2    config.json of the component (empty: none)
 *     part 3..6 shards model-0000K-of-0000N.safetensors, N their count
 *   The component folder is <tmp>/transformer when there is a
 *   model_index.json (which decides whether it is a component), else <tmp>.
 *
 * Each input is written into a temporary folder, opened with
 * hoist_pipeline_open and, when that succeeds, loaded with verification
 * into a host runtime of 16 MiB.  Checked on the way: a status and a handle
 * agree; every failure message is one line of valid UTF-8 without control
 * characters; out of memory is never reported on these tiny inputs (it
 * would be a parse failure misreported); an open pipeline obeys the
 * discovery rules (a tensor name in one file of a component, sizes summed
 * from the files); a verified load of unchanged files never mismatches,
 * and every tensor it placed reads back as the file's bytes.  ASan's leak
 * checker covers every failure path. */
#include "hoist.h"
#include "json_lexer.h" /* hoist__utf8_invalid_offset */
#include "pipeline.h"   /* hoist__pipeline_safetensors */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what, const char *detail) {
  if (!ok) {
    fprintf(stderr, "fuzz_discover: invariant failed: %s (%s)\n", what, detail);
    abort();
  }
}

/* What a call returned: status and handle agree, and a failure is a
 * refusal with a one-line message, never out of memory on these tiny
 * inputs (that would be a parse failure misreported) nor, for a verified
 * load of files nobody changed, a mismatch. */
static void check_result(int rc, const void *handle, const char *msg) {
  check((rc == HOIST_OK) == (handle != NULL), "status and handle agree", msg);
  if (rc == HOIST_OK) return;
  size_t len = strlen(msg);
  check(rc != HOIST_NO_MEMORY, "no out of memory on a tiny input", msg);
  check(rc != HOIST_VERIFY_MISMATCH, "a verified load of unchanged files", msg);
  check(hoist__utf8_invalid_offset((const unsigned char *)msg, len) == len, "message is UTF-8", msg);
  for (const unsigned char *c = (const unsigned char *)msg; *c != '\0'; c++)
    check(*c >= 0x20 && *c != 0x7f && !(c[0] == 0xC2 && c[1] >= 0x80 && c[1] < 0xA0),
          "message without control characters", msg);
}

/* ---- The temporary pipeline */

#define MAX_SHARDS 4
static const char sep[] = "\n--8<--\n";

static char root[256];
static hoist_runtime *rt;

static void put(const char *dir, const char *name, const uint8_t *bytes, size_t len) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  check(f != NULL, "temporary file", path);
  check(len == 0 || fwrite(bytes, 1, len, f) == len, "write", path);
  check(fclose(f) == 0, "close", path);
}

/* Removes what an earlier input left: the names written are known. */
static void clear(void) {
  static const char *const dirs[] = {"", "/transformer"};
  for (size_t d = 0; d < 2; d++) {
    char dir[300], path[512];
    snprintf(dir, sizeof dir, "%s%s", root, dirs[d]);
    static const char *const fixed[] = {"model_index.json", "config.json",
                                        "model.safetensors.index.json",
                                        "model.safetensors.index.fp16.json"};
    for (size_t i = 0; i < 4; i++) {
      snprintf(path, sizeof path, "%s/%s", dir, fixed[i]);
      unlink(path);
    }
    for (int n = 1; n <= MAX_SHARDS; n++)
      for (int k = 1; k <= n; k++) {
        snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, k, n);
        unlink(path);
        snprintf(path, sizeof path, "%s/model.fp16-%05d-of-%05d.safetensors", dir, k, n);
        unlink(path);
      }
  }
  char sub[300];
  snprintf(sub, sizeof sub, "%s/transformer", root);
  rmdir(sub);
}

static void setup(void) {
  if (rt != NULL) return;
  const char *tmp = getenv("TMPDIR");
  snprintf(root, sizeof root, "%s/fuzz_discover.XXXXXX", tmp != NULL ? tmp : "/tmp");
  check(mkdtemp(root) != NULL, "mkdtemp", root);
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.device = "host";
  cfg.capacity = 16u << 20;
  cfg.threads = 2;
  check(hoist_runtime_create(&cfg, &rt) == HOIST_OK, "host runtime", hoist_last_error(NULL));
}

/* Splits data at sep into at most max parts; returns the count. */
static size_t split(const uint8_t *data, size_t size, const uint8_t **part, size_t *len, size_t max) {
  size_t n = 0, start = 0, k = sizeof sep - 1;
  for (size_t i = 0; n + 1 < max && i + k <= size; i++) {
    if (memcmp(data + i, sep, k) != 0) continue;
    part[n] = data + start;
    len[n++] = i - start;
    start = i + k;
    i = start - 1;
  }
  part[n] = data + start;
  len[n++] = size - start;
  return n;
}

/* Writes the pipeline; returns the variant to ask for. */
static const char *write_pipeline(uint8_t flags, const uint8_t **part, const size_t *len, size_t n) {
  bool variant = flags & 2;
  char comp[300];
  snprintf(comp, sizeof comp, "%s%s", root, n > 0 && len[0] > 0 ? "/transformer" : "");
  if (n > 0 && len[0] > 0) {
    put(root, "model_index.json", part[0], len[0]);
    check(mkdir(comp, 0755) == 0, "mkdir", comp);
  }
  if (n > 1 && len[1] > 0)
    put(comp, variant ? "model.safetensors.index.fp16.json" : "model.safetensors.index.json",
        part[1], len[1]);
  if (n > 2 && len[2] > 0) put(comp, "config.json", part[2], len[2]);
  int shards = n > 3 ? (int)(n - 3) : 0;
  for (int k = 1; k <= shards; k++) {
    char name[64];
    snprintf(name, sizeof name, "model%s-%05d-of-%05d.safetensors", variant ? ".fp16" : "", k,
             shards);
    put(comp, name, part[2 + k], len[2 + k]);
  }
  return variant ? "fp16" : NULL;
}

/* ---- What an open pipeline must satisfy */

static void check_pipeline(const hoist_pipeline *p, int converts) {
  size_t n = hoist_pipeline_component_count(p);
  for (size_t i = 0; i < n; i++) {
    const hoist_component_info *c = hoist_pipeline_component(p, i);
    check(c != NULL && c->position < n && hoist_pipeline_ordered(p, c->position) == c, "order",
          c != NULL ? c->name : "");
    hoist_file *const *files = NULL;
    size_t nf = hoist__pipeline_safetensors(p, i, &files);
    uint64_t bytes = 0;
    size_t tensors = 0;
    for (size_t f = 0; f < nf; f++) {
      bytes += hoist_file_data_bytes(files[f]);
      tensors += hoist_file_tensor_count(files[f]);
      /* One file per tensor name within a component. */
      for (size_t t = 0; t < hoist_file_tensor_count(files[f]); t++)
        for (size_t g = 0; g < nf; g++)
          check(g == f || hoist_file_find(files[g], hoist_file_tensor(files[f], t)->name) == NULL,
                "tensor names unique across a component's files", hoist_file_path(files[f]));
    }
    if (nf > 0) {
      check(c->tensor_count == tensors, "tensor count", c->name);
      check(converts || c->inferred_bytes == bytes, "inferred bytes", c->name);
    }
  }
}

/* Every tensor of a resident component reads back as the file's bytes. */
static void check_tensors(const hoist_pipeline *p, hoist_loaded *l, size_t slot) {
  const hoist_component_info *c = hoist_pipeline_component(p, slot);
  hoist_file *const *files = NULL;
  size_t nf = hoist__pipeline_safetensors(p, slot, &files);
  for (size_t f = 0; f < nf; f++)
    for (size_t t = 0; t < hoist_file_tensor_count(files[f]); t++) {
      const hoist_tensor_info *ti = hoist_file_tensor(files[f], t);
      uint64_t addr = 0;
      const hoist_tensor_info *dev = NULL;
      int rc = hoist_loaded_tensor(l, c->name, ti->name, &addr, &dev);
      check(rc == HOIST_OK, "loaded tensor found", hoist_last_error(NULL));
      if (dev->dtype != ti->dtype || ti->nbytes == 0) continue; /* converted */
      const unsigned char *want =
          (const unsigned char *)hoist_file_mapping(files[f]) + hoist_file_data_offset(files[f]) +
          ti->begin;
      check(memcmp((const void *)(uintptr_t)addr, want, (size_t)ti->nbytes) == 0,
            "loaded bytes are the file's", ti->name);
    }
}

static void load(const hoist_pipeline *p, uint8_t flags) {
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.verify = 1;
  o.dtype = flags & 1 ? "bf16" : NULL;
  o.offload = flags & 4 ? "all" : NULL;
  o.scratch_bytes = 1u << 20;
  hoist_loaded *l = NULL;
  int rc = hoist_load_pipeline(rt, p, &o, &l);
  check_result(rc, l, hoist_last_error(rt));
  if (rc != HOIST_OK) return;
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++) {
    const hoist_loaded_info *li = hoist_loaded_component(l, i);
    size_t slot = SIZE_MAX;
    for (size_t s = 0; s < hoist_pipeline_component_count(p); s++)
      if (strcmp(hoist_pipeline_component(p, s)->name, li->name) == 0) slot = s;
    check(slot != SIZE_MAX, "loaded component is the pipeline's", li->name);
    if (li->residency == HOIST_OFFLOAD) {
      int moved = 0;
      rc = hoist_prepare_for_use(l, i, NULL, &moved);
      check_result(rc, rc == HOIST_OK ? l : NULL, hoist_last_error(rt));
      if (rc != HOIST_OK) continue; /* may not fit beside the others */
      check_tensors(p, l, slot);
      check(hoist_release_after_use(l, i, &moved) == HOIST_OK, "release", hoist_last_error(rt));
    } else {
      check_tensors(p, l, slot);
    }
  }
  hoist_loaded_close(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  setup();
  clear();
  const uint8_t *part[3 + MAX_SHARDS];
  size_t len[3 + MAX_SHARDS];
  size_t n = split(data + 1, size - 1, part, len, 3 + MAX_SHARDS);
  uint8_t flags = data[0];
  hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
  po.variant = write_pipeline(flags, part, len, n);
  po.dtype = flags & 1 ? "bf16" : NULL;
  hoist_pipeline *p = NULL;
  int rc = hoist_pipeline_open(rt, root, &po, &p);
  check_result(rc, p, hoist_last_error(rt));
  if (rc != HOIST_OK) return 0;
  check_pipeline(p, flags & 1);
  load(p, flags);
  hoist_pipeline_close(p);
  return 0;
}
