/* manifest.c — a content manifest in memory, and its file format
 * (manifest.h documents the format): reading one under the caps of JSON
 * side files, writing one atomically, the accessors of hoist.h, and the
 * path rules its makers and readers share. */
#include "manifest.h"

#include "dtype.h"
#include "side_file.h"
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Memory */

hoist_manifest *hoist__manifest_new(uint64_t piece_bytes, const char *variant) {
  hoist_manifest *m = calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  m->piece_bytes = piece_bytes;
  if (variant != NULL && (m->variant = hoist__strdup(variant)) == NULL) {
    free(m);
    return NULL;
  }
  return m;
}

bool hoist__manifest_tensor_alloc(manifest_tensor *t, uint32_t ndim, uint64_t npieces) {
  uint64_t n = 0;
  if (!hoist__add_u64(ndim, npieces, &n) || n > SIZE_MAX / sizeof *t->shape - 1) return false;
  t->ndim = ndim;
  t->shape = malloc((size_t)(n + 1) * sizeof *t->shape);
  t->pieces = t->shape != NULL ? t->shape + ndim : NULL;
  return t->shape != NULL;
}

void hoist_manifest_close(hoist_manifest *m) {
  if (m == NULL) return;
  free(m->variant);
  for (manifest_file *f = m->files; f != NULL && f < m->files + m->nfiles; f++) {
    /* A tensor holds its name and one block of numbers (shape, pieces). */
    for (size_t t = 0; t < f->ntensors; t++) {
      free(f->tensors[t].name);
      free(f->tensors[t].shape);
    }
    free(f->tensors);
    free(f->path);
  }
  free(m->files);
  free(m);
}

static int cmp_file(const void *a, const void *b) {
  return strcmp(((const manifest_file *)a)->path, ((const manifest_file *)b)->path);
}

/* Sorts files[0, n) by path; the first repeated path, or NULL. */
static const char *sort_unique(manifest_file *files, size_t n) {
  qsort(files, n, sizeof *files, cmp_file);
  for (size_t i = 1; i < n; i++)
    if (strcmp(files[i - 1].path, files[i].path) == 0) return files[i].path;
  return NULL;
}

int hoist__manifest_finish(hoist_runtime *rt, hoist_manifest *m, int status, const char *shown) {
  char pb[HOIST_SHOW_PATH];
  const char *dup = sort_unique(m->files, m->nweights);
  if (dup == NULL) dup = sort_unique(m->files + m->nweights, m->nfiles - m->nweights);
  if (dup != NULL)
    return hoist__fail(rt, status, "%s: the file %s is listed twice", shown,
                       hoist__show(dup, pb, sizeof pb));
  for (size_t i = 0; i < m->nfiles; i++) {
    manifest_file *f = &m->files[i];
    f->pub = (hoist_manifest_file_info){f->path, i >= m->nweights, f->pub.size, f->sha256,
                                        f->ntensors};
  }
  return HOIST_OK;
}

const manifest_file *hoist__manifest_find(const hoist_manifest *m, const char *rel, int side) {
  size_t lo = side ? m->nweights : 0, hi = side ? m->nfiles : m->nweights;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(m->files[mid].path, rel);
    if (c == 0) return &m->files[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

/* ---- Accessors (hoist.h) */

size_t hoist_manifest_file_count(const hoist_manifest *m) { return m->nfiles; }

const hoist_manifest_file_info *hoist_manifest_file(const hoist_manifest *m, size_t i) {
  return i < m->nfiles ? &m->files[i].pub : NULL;
}

uint64_t hoist_manifest_piece_bytes(const hoist_manifest *m) { return m->piece_bytes; }
const char *hoist_manifest_variant(const hoist_manifest *m) { return m->variant; }

const char *hoist_manifest_verdict_name(hoist_manifest_verdict v) {
  static const char *const names[] = {"match", "size", "sha256", "missing", "extra"};
  return (unsigned)v < sizeof names / sizeof names[0] ? names[v] : "unknown";
}

/* ---- Paths */

char *hoist__manifest_base(const char *path) {
  struct stat st;
  if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return hoist__strdup(path);
  const char *slash = strrchr(path, '/');
  size_t n = slash == NULL ? 0 : slash == path ? 1 : (size_t)(slash - path);
  char *out = malloc(n + 1);
  if (out == NULL) return NULL;
  memcpy(out, path, n);
  out[n] = '\0';
  return out;
}

char *hoist__manifest_relpath(const char *base, const char *file) {
  size_t n = strlen(base);
  while (n > 1 && base[n - 1] == '/') n--;
  const char *rest = file;
  if (n > 0) {
    if (strncmp(file, base, n) != 0) return NULL;
    rest = file + n;
    if (base[n - 1] != '/') {
      if (*rest != '/') return NULL;
      rest++;
    }
  }
  while (*rest == '/') rest++;
  return *rest != '\0' ? hoist__strdup(rest) : NULL;
}

char *hoist__manifest_join(const char *base, const char *rel) {
  size_t a = strlen(base), n = a + strlen(rel) + 2;
  char *out = malloc(n);
  if (out != NULL) snprintf(out, n, "%s%s%s", base, a > 0 && base[a - 1] != '/' ? "/" : "", rel);
  return out;
}

bool hoist__manifest_path_ok(const char *rel) {
  if (rel[0] == '\0' || rel[0] == '/' || strlen(rel) >= 4096) return false;
  for (const unsigned char *p = (const unsigned char *)rel; *p != '\0'; p++)
    if (*p < 0x20 || *p == 0x7f) return false;
  for (const char *c = rel; c != NULL;) {
    const char *end = strchr(c, '/');
    size_t len = end != NULL ? (size_t)(end - c) : strlen(c);
    if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
      return false;
    c = end != NULL ? end + 1 : NULL;
  }
  return true;
}

void hoist__hex(const unsigned char *bytes, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
  out[2 * n] = '\0';
}

/* A 64-bit hash as 16 hex digits, most significant first. */
static void hex64(uint64_t v, char *out) {
  unsigned char b[8];
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (56 - 8 * i));
  hoist__hex(b, 8, out);
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* n 64-bit values from 16n lowercase hex digits; false on another digit. */
static bool parse_hex64(const char *s, uint64_t *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint64_t v = 0;
    for (int k = 0; k < 16; k++) {
      int d = hex_digit(s[16 * i + (size_t)k]);
      if (d < 0) return false;
      v = v << 4 | (uint64_t)d;
    }
    out[i] = v;
  }
  return true;
}

/* ---- Reading */

/* What parsing one manifest file shares: the file's shown name, the
 * member being read (for messages) and the piece size. */
typedef struct parse_ctx {
  hoist_runtime *rt;
  char shown[HOIST_SHOW_PATH];
  char where[HOIST_SHOW_PATH + 32]; /* "files[3] (transformer/x.safetensors)" */
  uint64_t piece;
} parse_ctx;

static int bad(parse_ctx *x, const char *what) {
  return hoist__fail(x->rt, HOIST_BAD_MANIFEST, "%s: %s%s%s", x->shown, x->where,
                     x->where[0] != '\0' ? ": " : "", what);
}

/* An integer in [0, 2^53] (exact in a double, as JSON readers hold it). */
static bool json_u64(const cJSON *v, uint64_t *out) {
  double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
  if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d) return false;
  *out = (uint64_t)d;
  return true;
}

/* A member that must be such an integer. */
static int get_u64(parse_ctx *x, const cJSON *obj, const char *key, uint64_t *out) {
  char msg[96];
  if (json_u64(cJSON_GetObjectItemCaseSensitive(obj, key), out)) return HOIST_OK;
  snprintf(msg, sizeof msg, "\"%s\" is not an integer in [0, 2^53]", key);
  return bad(x, msg);
}

/* A member that must be a string (of exactly len bytes when len > 0). */
static int get_str(parse_ctx *x, const cJSON *obj, const char *key, size_t len, const char **out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  char msg[96];
  if (cJSON_IsString(v) && (len == 0 || strlen(v->valuestring) == len)) {
    *out = v->valuestring;
    return HOIST_OK;
  }
  if (len > 0)
    snprintf(msg, sizeof msg, "\"%s\" is not a string of %zu characters", key, len);
  else
    snprintf(msg, sizeof msg, "\"%s\" is not a string", key);
  return bad(x, msg);
}

/* A member holding n hashes of 16 hex digits each. */
static int get_hex64(parse_ctx *x, const cJSON *obj, const char *key, uint64_t *out, size_t n) {
  const char *s = NULL;
  char msg[96];
  int rc = get_str(x, obj, key, 0, &s);
  if (rc != HOIST_OK || (strlen(s) == 16 * n && parse_hex64(s, out, n))) return rc;
  snprintf(msg, sizeof msg, "\"%s\" is not %zu hash%s of 16 lowercase hex digits", key, n,
           n == 1 ? "" : "es");
  return bad(x, msg);
}

static int no_memory(parse_ctx *x) {
  return hoist__fail(x->rt, HOIST_NO_MEMORY, "%s: out of memory", x->shown);
}

/* The shape (t->ndim integers, room made for them) whose product, in the
 * dtype, is the tensor's bytes. */
static int parse_shape(parse_ctx *x, const cJSON *shape, manifest_tensor *t) {
  uint64_t elems = 1, bits = 0;
  bool ok = true;
  size_t i = 0;
  for (const cJSON *d = shape->child; d != NULL && ok; d = d->next, i++)
    ok = json_u64(d, &t->shape[i]) && hoist__mul_u64(elems, t->shape[i], &elems);
  if (!ok || !hoist__mul_u64(elems, hoist_dtype_bits(t->dtype), &bits) || bits % 8 != 0 ||
      bits / 8 != t->end - t->begin)
    return bad(x, "a tensor's \"shape\" and \"dtype\" do not give its bytes");
  return HOIST_OK;
}

/* One tensor entry; *at is where it must begin (the previous one's end)
 * and becomes its end. */
static int parse_tensor(parse_ctx *x, const cJSON *e, manifest_tensor *t, uint64_t *at) {
  const char *name = NULL, *dtype = NULL;
  const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
  int rc = get_str(x, e, "name", 0, &name);
  if (rc == HOIST_OK) rc = get_str(x, e, "dtype", 0, &dtype);
  if (rc != HOIST_OK) return rc;
  if ((t->name = hoist__strdup(name)) == NULL) return no_memory(x);
  if (hoist_dtype_from_name(dtype, strlen(dtype), &t->dtype) != HOIST_OK)
    return bad(x, "a tensor's \"dtype\" is not a safetensors dtype");
  if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
      !json_u64(cJSON_GetArrayItem(off, 0), &t->begin) ||
      !json_u64(cJSON_GetArrayItem(off, 1), &t->end) || t->begin != *at || t->end < t->begin) {
    char nb[HOIST_SHOW_NAME], msg[HOIST_SHOW_NAME + 96];
    snprintf(msg, sizeof msg, "tensor '%s': \"data_offsets\" is not [begin, end] from %llu",
             hoist__show(name, nb, sizeof nb), (unsigned long long)*at);
    return bad(x, msg);
  }
  *at = t->end;
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
  const int ndim = cJSON_GetArraySize(shape);
  if (!cJSON_IsArray(shape) || ndim > 64)
    return bad(x, "a tensor's \"shape\" is not an array of at most 64 integers");
  uint64_t n = hoist__manifest_pieces(t->end - t->begin, x->piece);
  if (!hoist__manifest_tensor_alloc(t, (uint32_t)ndim, n)) return no_memory(x);
  if ((rc = parse_shape(x, shape, t)) != HOIST_OK) return rc;
  return get_hex64(x, e, "xxh3", t->pieces, (size_t)n);
}

/* The header and tensors of a recorded safetensors file. */
static int parse_safetensors(parse_ctx *x, const cJSON *e, manifest_file *f) {
  const cJSON *tensors = cJSON_GetObjectItemCaseSensitive(e, "tensors");
  int rc = get_u64(x, e, "header_bytes", &f->header_bytes);
  if (rc == HOIST_OK) rc = get_hex64(x, e, "header_xxh3", &f->header_xxh3, 1);
  if (rc != HOIST_OK) return rc;
  if (f->header_bytes < 10 || f->header_bytes > f->pub.size ||
      f->header_bytes > 8 + HOIST_MAX_HEADER_BYTES)
    return bad(x, "\"header_bytes\" is not 8 + N for a header that fits the file");
  if (!cJSON_IsArray(tensors)) return bad(x, "\"tensors\" is not an array");
  size_t n = (size_t)cJSON_GetArraySize(tensors);
  if ((f->tensors = calloc(n > 0 ? n : 1, sizeof *f->tensors)) == NULL) return no_memory(x);
  f->safetensors = 1;
  uint64_t at = 0;
  for (const cJSON *t = tensors->child; t != NULL && rc == HOIST_OK; t = t->next)
    rc = parse_tensor(x, t, &f->tensors[f->ntensors++], &at);
  if (rc == HOIST_OK && at != f->pub.size - f->header_bytes)
    rc = bad(x, "the tensors do not cover the data section exactly");
  return rc;
}

/* One entry of "files" or "side_files". */
static int parse_file(parse_ctx *x, const cJSON *e, size_t i, bool side, manifest_file *f) {
  const char *path = NULL, *sha = NULL;
  char pb[HOIST_SHOW_PATH];
  snprintf(x->where, sizeof x->where, "%s[%zu]", side ? "side_files" : "files", i);
  if (!cJSON_IsObject(e)) return bad(x, "not an object");
  int rc = get_str(x, e, "path", 0, &path);
  if (rc != HOIST_OK) return rc;
  if (!hoist__manifest_path_ok(path))
    return bad(x, "\"path\" is not a relative path inside the pipeline");
  snprintf(x->where, sizeof x->where, "%s[%zu] (%s)", side ? "side_files" : "files", i,
           hoist__show(path, pb, sizeof pb));
  if ((f->path = hoist__strdup(path)) == NULL) return no_memory(x);
  rc = get_u64(x, e, "size", &f->pub.size);
  if (rc == HOIST_OK) rc = get_str(x, e, "sha256", 64, &sha);
  if (rc != HOIST_OK) return rc;
  for (size_t k = 0; k < 64; k++)
    if (hex_digit(sha[k]) < 0) return bad(x, "\"sha256\" is not lowercase hex");
  memcpy(f->sha256, sha, 65);
  if (side || cJSON_GetObjectItemCaseSensitive(e, "tensors") == NULL) return HOIST_OK;
  return parse_safetensors(x, e, f);
}

/* The members of the top-level object that describe the whole manifest. */
static int parse_head(parse_ctx *x, const cJSON *root, const char **variant) {
  const char *s = NULL;
  uint64_t version = 0;
  char msg[128];
  if (!cJSON_IsObject(root)) return bad(x, "not a JSON object");
  if (get_str(x, root, "format", 0, &s) != HOIST_OK || strcmp(s, "hoist-manifest") != 0)
    return bad(x, "\"format\" is not \"hoist-manifest\"");
  int rc = get_u64(x, root, "version", &version);
  if (rc != HOIST_OK) return rc;
  if (version != HOIST_MANIFEST_VERSION) {
    snprintf(msg, sizeof msg, "version %llu; this hoist reads version %d",
             (unsigned long long)version, HOIST_MANIFEST_VERSION);
    return bad(x, msg);
  }
  if ((rc = get_u64(x, root, "piece_bytes", &x->piece)) != HOIST_OK) return rc;
  if (x->piece < HOIST_MANIFEST_MIN_PIECE || x->piece > HOIST_MANIFEST_MAX_PIECE ||
      (x->piece & (x->piece - 1)) != 0)
    return bad(x, "\"piece_bytes\" is not a power of two from 64 KiB to 1 GiB");
  if (get_str(x, root, "piece_hash", 0, &s) != HOIST_OK || strcmp(s, "xxh3-64") != 0)
    return bad(x, "\"piece_hash\" is not \"xxh3-64\"");
  if (get_str(x, root, "file_hash", 0, &s) != HOIST_OK || strcmp(s, "sha256") != 0)
    return bad(x, "\"file_hash\" is not \"sha256\"");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "variant");
  *variant = cJSON_IsString(v) ? v->valuestring : NULL;
  if ((v != NULL && !cJSON_IsNull(v) && !cJSON_IsString(v)) ||
      (*variant != NULL && (*variant[0] == '\0' || strpbrk(*variant, "./\\") != NULL)))
    return bad(x, "\"variant\" is neither null nor a plain name");
  return HOIST_OK;
}

static int parse_files(parse_ctx *x, const cJSON *root, hoist_manifest *m) {
  const cJSON *files = cJSON_GetObjectItemCaseSensitive(root, "files");
  const cJSON *sides = cJSON_GetObjectItemCaseSensitive(root, "side_files");
  if (!cJSON_IsArray(files) || !cJSON_IsArray(sides))
    return bad(x, "\"files\" or \"side_files\" is not an array");
  size_t nf = (size_t)cJSON_GetArraySize(files), ns = (size_t)cJSON_GetArraySize(sides);
  if ((m->files = calloc(nf + ns > 0 ? nf + ns : 1, sizeof *m->files)) == NULL) return no_memory(x);
  int rc = HOIST_OK;
  size_t i = 0;
  for (const cJSON *e = files->child; e != NULL && rc == HOIST_OK; e = e->next, i++) {
    m->nfiles = m->nweights = i + 1;
    rc = parse_file(x, e, i, false, &m->files[i]);
  }
  i = 0;
  for (const cJSON *e = sides->child; e != NULL && rc == HOIST_OK; e = e->next, i++) {
    m->nfiles = nf + i + 1;
    rc = parse_file(x, e, i, true, &m->files[nf + i]);
  }
  x->where[0] = '\0';
  return rc == HOIST_OK ? hoist__manifest_finish(x->rt, m, HOIST_BAD_MANIFEST, x->shown) : rc;
}

int hoist_manifest_load(hoist_runtime *rt, const char *path, hoist_manifest **out) {
  *out = NULL;
  parse_ctx x = {.rt = rt};
  hoist__show(path, x.shown, sizeof x.shown);
  cJSON *root = NULL;
  hoist_manifest *m = NULL;
  const char *variant = NULL;
  static const hoist__side_kind manifest_kind = {"a manifest", HOIST_MANIFEST_MAX_BYTES,
                                                 HOIST_BAD_MANIFEST};
  int rc = hoist__side_json_read(rt, path, &manifest_kind, &root, NULL);
  if (rc == HOIST_OK) rc = parse_head(&x, root, &variant);
  if (rc == HOIST_OK && (m = hoist__manifest_new(x.piece, variant)) == NULL) rc = no_memory(&x);
  if (rc == HOIST_OK) rc = parse_files(&x, root, m);
  cJSON_Delete(root);
  if (rc != HOIST_OK) {
    hoist_manifest_close(m);
    return rc;
  }
  *out = m;
  return HOIST_OK;
}

/* ---- Writing */

static cJSON *tensor_json(const manifest_tensor *t, uint64_t piece) {
  cJSON *e = cJSON_CreateObject(), *shape = NULL, *off = NULL;
  uint64_t n = hoist__manifest_pieces(t->end - t->begin, piece);
  char *hex = malloc((size_t)n * 16 + 1);
  bool ok = e != NULL && hex != NULL && cJSON_AddStringToObject(e, "name", t->name) != NULL &&
            cJSON_AddStringToObject(e, "dtype", hoist_dtype_name(t->dtype)) != NULL &&
            (shape = cJSON_AddArrayToObject(e, "shape")) != NULL &&
            (off = cJSON_AddArrayToObject(e, "data_offsets")) != NULL;
  for (uint32_t d = 0; ok && d < t->ndim; d++)
    ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
  ok = ok && cJSON_AddItemToArray(off, cJSON_CreateNumber((double)t->begin)) &&
       cJSON_AddItemToArray(off, cJSON_CreateNumber((double)t->end));
  for (uint64_t k = 0; ok && k < n; k++) hex64(t->pieces[k], hex + 16 * k);
  if (ok) hex[16 * n] = '\0';
  ok = ok && cJSON_AddStringToObject(e, "xxh3", hex) != NULL;
  free(hex);
  if (!ok) {
    cJSON_Delete(e);
    return NULL;
  }
  return e;
}

static cJSON *file_json(const manifest_file *f, uint64_t piece) {
  cJSON *e = cJSON_CreateObject();
  char hx[17];
  bool ok = e != NULL && cJSON_AddStringToObject(e, "path", f->path) != NULL &&
            cJSON_AddNumberToObject(e, "size", (double)f->pub.size) != NULL &&
            cJSON_AddStringToObject(e, "sha256", f->sha256) != NULL;
  if (ok && f->safetensors) {
    hex64(f->header_xxh3, hx);
    cJSON *tensors = NULL;
    ok = cJSON_AddNumberToObject(e, "header_bytes", (double)f->header_bytes) != NULL &&
         cJSON_AddStringToObject(e, "header_xxh3", hx) != NULL &&
         (tensors = cJSON_AddArrayToObject(e, "tensors")) != NULL;
    for (size_t t = 0; ok && t < f->ntensors; t++)
      ok = cJSON_AddItemToArray(tensors, tensor_json(&f->tensors[t], piece));
  }
  if (!ok) {
    cJSON_Delete(e);
    return NULL;
  }
  return e;
}

/* The manifest as JSON text (cJSON_free it); NULL when out of memory. */
static char *manifest_text(const hoist_manifest *m) {
  cJSON *root = cJSON_CreateObject(), *files = NULL, *sides = NULL;
  bool ok = root != NULL && cJSON_AddStringToObject(root, "format", "hoist-manifest") != NULL &&
            cJSON_AddNumberToObject(root, "version", HOIST_MANIFEST_VERSION) != NULL &&
            cJSON_AddNumberToObject(root, "piece_bytes", (double)m->piece_bytes) != NULL &&
            cJSON_AddStringToObject(root, "piece_hash", "xxh3-64") != NULL &&
            cJSON_AddStringToObject(root, "file_hash", "sha256") != NULL &&
            (m->variant != NULL ? cJSON_AddStringToObject(root, "variant", m->variant)
                                : cJSON_AddNullToObject(root, "variant")) != NULL &&
            (files = cJSON_AddArrayToObject(root, "files")) != NULL &&
            (sides = cJSON_AddArrayToObject(root, "side_files")) != NULL;
  for (size_t i = 0; ok && i < m->nfiles; i++)
    ok = cJSON_AddItemToArray(i < m->nweights ? files : sides, file_json(&m->files[i], m->piece_bytes));
  char *text = ok ? cJSON_Print(root) : NULL;
  cJSON_Delete(root);
  return text;
}

/* Temporaries of concurrent saves in one process never share a name. */
static atomic_uint save_counter;

/* Writes len bytes of text to a new file tmp (never an existing one, never
 * through a link) and flushes it to disk. */
static int write_new(hoist_runtime *rt, const char *tmp, const char *shown, const char *text,
                     size_t len) {
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return hoist__fail(rt, HOIST_IO, "%s: cannot create a temporary: %s", shown, strerror(errno));
  int rc = HOIST_OK;
  for (size_t done = 0; done < len && rc == HOIST_OK;) {
    ssize_t k = write(fd, text + done, len - done);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0)
      rc = hoist__fail(rt, HOIST_IO, "%s: write: %s", shown, k < 0 ? strerror(errno) : "no progress");
    else
      done += (size_t)k;
  }
  if (rc == HOIST_OK && fsync(fd) != 0)
    rc = hoist__fail(rt, HOIST_IO, "%s: fsync: %s", shown, strerror(errno));
  if (close(fd) != 0 && rc == HOIST_OK)
    rc = hoist__fail(rt, HOIST_IO, "%s: close: %s", shown, strerror(errno));
  return rc;
}

int hoist_manifest_save(hoist_runtime *rt, const hoist_manifest *m, const char *path) {
  char pb[HOIST_SHOW_PATH];
  const char *shown = hoist__show(path, pb, sizeof pb);
  struct stat st;
  if (lstat(path, &st) == 0 && (S_ISLNK(st.st_mode) || S_ISDIR(st.st_mode)))
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "%s: is a %s; a manifest is never written "
                       "through one", shown, S_ISLNK(st.st_mode) ? "symbolic link" : "folder");
  char *base = hoist__manifest_base(path);
  const char *slash = strrchr(path, '/');
  const char *name = slash != NULL ? slash + 1 : path;
  size_t size = strlen(path) + 64;
  char *tmp = malloc(size);
  char *text = manifest_text(m);
  int rc = HOIST_OK;
  if (base == NULL || tmp == NULL || text == NULL) {
    rc = hoist__fail(rt, HOIST_NO_MEMORY, "%s: out of memory writing a manifest", shown);
    goto done;
  }
  /* The temporary lies beside path (same file system: the rename is
   * atomic), hidden, with a name no other save of this process uses. */
  size_t nb = strlen(base);
  snprintf(tmp, size, "%s%s.%s.hoist-%ld-%u", base, nb > 0 && base[nb - 1] != '/' ? "/" : "", name,
           (long)getpid(), atomic_fetch_add(&save_counter, 1));
  rc = write_new(rt, tmp, shown, text, strlen(text));
  /* rename replaces whatever entry path is now, a link planted meanwhile
   * included, without opening it. */
  if (rc == HOIST_OK && rename(tmp, path) != 0)
    rc = hoist__fail(rt, HOIST_IO, "%s: rename: %s", shown, strerror(errno));
  if (rc != HOIST_OK) (void)unlink(tmp);
  /* The new directory entry reaches the disk too (best effort). */
  int dfd = rc == HOIST_OK ? open(base[0] != '\0' ? base : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
done:
  cJSON_free(text);
  free(tmp);
  free(base);
  return rc;
}
