/* side_file.c — discovery's JSON side files: model_index.json,
 * config.json and *.safetensors.index.json, each read whole and parsed
 * under rules that keep a hostile file from costing more than a bounded,
 * stated amount of memory, or from meaning two things:
 *
 *   - a size cap, checked on the open file before anything is read: 1 MiB
 *     for model_index.json and config.json, 64 MiB for an index (real ones
 *     are a few kB and at most a few MB); the file must be a regular file
 *     (hoist__open_regular: a FIFO never blocks, a device is never opened);
 *   - the text is validated by json_lexer.c before cJSON parses it: UTF-8,
 *     strict JSON, nesting at most 32 levels, at most 2^21 values, no
 *     string that decodes to U+0000.  cJSON accepts everything the lexer
 *     does, so a failed parse can only be out of memory, reported as such;
 *     the value cap bounds the tree cJSON builds (about 80 bytes a value):
 *     a plan of an index at the cap peaks near 230 MB;
 *   - duplicate keys in any object are refused (Python's json keeps the
 *     last, cJSON every one, so such a file means nothing certain).
 *
 * Every path in a message is shown through hoist__show (one line). */
#include "side_file.h"

#include "json_lexer.h"
#include "names.h"
#include "safetensors.h" /* hoist__open_regular */

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HOIST_MODEL_INDEX_MAX_BYTES (UINT64_C(1) << 20)
#define HOIST_CONFIG_MAX_BYTES (UINT64_C(1) << 20)
#define HOIST_SHARD_INDEX_MAX_BYTES (UINT64_C(64) << 20)
#define HOIST_SIDE_JSON_MAX_DEPTH 32
#define HOIST_SIDE_JSON_MAX_VALUES ((size_t)1 << 21)

const hoist__side_kind hoist__side_model_index = {"model_index.json", HOIST_MODEL_INDEX_MAX_BYTES,
                                                  HOIST_BAD_PIPELINE};
const hoist__side_kind hoist__side_config = {"config.json", HOIST_CONFIG_MAX_BYTES,
                                             HOIST_BAD_PIPELINE};
const hoist__side_kind hoist__side_shard_index = {"a shard index", HOIST_SHARD_INDEX_MAX_BYTES,
                                                  HOIST_BAD_INDEX};

/* Reads a whole side file after checking that it is a regular file within
 * its cap; *buf (NUL-terminated, owned by the caller) and *len. */
static int read_side_file(hoist_runtime *rt, const char *path, const hoist__side_kind *kind,
                          char **buf, size_t *len) {
  char pb[HOIST_SHOW_PATH];
  *buf = NULL;
  *len = 0;
  int fd;
  struct stat st;
  int rc = hoist__open_regular(rt, path, kind->status, &fd, &st);
  if (rc != HOIST_OK) return rc;
  if ((uint64_t)st.st_size > kind->max_bytes) {
    rc = hoist__fail(rt, kind->status,
                    "%s: %llu bytes, above the %llu MiB cap for %s (refused before parsing)",
                    hoist__show(path, pb, sizeof pb), (unsigned long long)st.st_size,
                    (unsigned long long)(kind->max_bytes >> 20), kind->name);
    goto fail;
  }
  size_t n = (size_t)st.st_size;
  char *b = malloc(n + 1);
  if (b == NULL) {
    rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory reading %zu bytes",
                    hoist__show(path, pb, sizeof pb), n);
    goto fail;
  }
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, b + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r < 0)
        rc = hoist__fail(rt, HOIST_IO, "%s: %s", hoist__show(path, pb, sizeof pb), strerror(errno));
      else
        rc = hoist__fail(rt, HOIST_FILE_CHANGED, "%s: shrank while it was read (%zu of %zu bytes)",
                        hoist__show(path, pb, sizeof pb), got, n);
      free(b);
      goto fail;
    }
    got += (size_t)r;
  }
  b[n] = '\0';
  *buf = b;
  *len = n;
fail:
  close(fd);
  return rc;
}

/* The cJSON member whose key field is *key. */
static const cJSON *member_of(const char *const *key) {
  return (const cJSON *)(const void *)((const char *)key - offsetof(cJSON, string));
}

/* Refuses duplicate keys in every object of the tree (where: the key of
 * the member holding v, NULL at the top): Python's json keeps the last of
 * them, cJSON every one, so such a file means nothing certain.  The tree is
 * at most HOIST_SIDE_JSON_MAX_DEPTH deep, which bounds the recursion. */
static int check_unique_keys(hoist_runtime *rt, const char *shown_path, int status,
                             const cJSON *v, const char *where) {
  if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) return HOIST_OK;
  int rc = HOIST_OK;
  if (cJSON_IsObject(v) && v->child != NULL && v->child->next != NULL) {
    size_t n = 0;
    for (const cJSON *m = v->child; m != NULL; m = m->next) n++;
    hoist__name_set set;
    if (!hoist__name_set_init(&set, n))
      return hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory checking keys", shown_path);
    for (const cJSON *m = v->child; m != NULL && rc == HOIST_OK; m = m->next) {
      const char *const *had = hoist__name_set_add(&set, (const char *const *)&m->string);
      if (had == NULL) continue;
      const cJSON *first = member_of(had);
      char kb[HOIST_SHOW_NAME], wb[HOIST_SHOW_NAME], ab[HOIST_SHOW_NAME], bb[HOIST_SHOW_NAME];
      char in[HOIST_SHOW_NAME + 16] = "", values[2 * HOIST_SHOW_NAME + 24] = "";
      if (where != NULL) snprintf(in, sizeof in, " in \"%s\"", hoist__show(where, wb, sizeof wb));
      if (cJSON_IsString(first) && cJSON_IsString(m))
        snprintf(values, sizeof values, " (values '%s' and '%s')",
                 hoist__show(first->valuestring, ab, sizeof ab),
                 hoist__show(m->valuestring, bb, sizeof bb));
      rc = hoist__fail(rt, status, "%s: duplicate key '%s'%s%s", shown_path,
                      hoist__show(m->string, kb, sizeof kb), in, values);
    }
    hoist__name_set_free(&set);
  }
  for (const cJSON *m = v->child; m != NULL && rc == HOIST_OK; m = m->next)
    rc = check_unique_keys(rt, shown_path, status, m, cJSON_IsObject(v) ? m->string : where);
  return rc;
}

int hoist__side_json_read(hoist_runtime *rt, const char *path, const hoist__side_kind *kind,
                          cJSON **out, bool *content_error) {
  char pb[HOIST_SHOW_PATH];
  const char *shown = hoist__show(path, pb, sizeof pb);
  *out = NULL;
  if (content_error != NULL) *content_error = false;
  char *buf = NULL;
  size_t len = 0;
  int rc = read_side_file(rt, path, kind, &buf, &len);
  if (rc != HOIST_OK) return rc;
  size_t values = 0;
  hoist__json_error jerr;
  int lrc = hoist__json_check(buf, len, HOIST_SIDE_JSON_MAX_DEPTH, &values, &jerr);
  bool bad_text = false;
  if (lrc == HOIST_HEADER_UTF8) {
    bad_text = true;
    rc = hoist__fail(rt, kind->status, "%s: not valid UTF-8 at byte %zu", shown, jerr.offset);
  } else if (lrc != HOIST_OK && jerr.depth_limit != 0) {
    rc = hoist__fail(rt, kind->status,
                    "%s: nesting deeper than %zu levels at byte %zu, the cap for JSON side files",
                    shown, jerr.depth_limit, jerr.offset);
  } else if (lrc != HOIST_OK) {
    bad_text = true;
    rc = hoist__fail(rt, kind->status, "%s: not valid JSON: %s at byte %zu", shown, jerr.what,
                    jerr.offset);
  } else if (values > HOIST_SIDE_JSON_MAX_VALUES) {
    rc = hoist__fail(rt, kind->status, "%s: %zu JSON values, above the cap of %zu for %s", shown,
                    values, HOIST_SIDE_JSON_MAX_VALUES, kind->name);
  }
  if (rc != HOIST_OK) goto fail;
  /* The text passed the strict validator, which accepts nothing cJSON
   * refuses: a NULL here can only be an allocation that failed. */
  cJSON *root = cJSON_ParseWithLengthOpts(buf, len, NULL, 0);
  if (root == NULL) {
    rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory parsing %zu bytes of JSON", shown,
                     len);
    goto fail;
  }
  rc = check_unique_keys(rt, shown, kind->status, root, NULL);
  if (rc != HOIST_OK) {
    bad_text = rc != HOIST_NO_MEMORY;
    cJSON_Delete(root);
    goto fail;
  }
  *out = root;
fail:
  if (content_error != NULL) *content_error = bad_text;
  free(buf);
  return rc;
}
