/* pipeline_writer.c — writes a preset as a diffusers pipeline folder (see
 * pipeline_writer.h): plans every file's layout on the calling thread,
 * checks that no name it will write is a link (dir_writer.h), writes the
 * small JSON files, then lets uv_thread workers generate and pwrite the
 * tensor data in 8 MiB pieces into temporaries that are renamed into place
 * when all are complete.  On any failure every temporary, file and folder
 * it created is removed again and files that were there keep their bytes.
 *
 * safetensors layout written (as the official writer does):
 *   [8 bytes: N, little-endian u64]
 *   [N bytes: compact JSON {"__metadata__":{"format":"pt"},
 *             "name":{"dtype":"BF16","shape":[..],"data_offsets":[b,e]},..}
 *             padded with spaces so that N % 8 == 0; tensors sorted by
 *             dtype alignment (largest first) then name, offsets
 *             contiguous from 0]
 *   [tensor data]
 */
#include "pipeline_writer.h"

#include "dir_writer.h"
#include "hoist_tools.h"
#include "tokenizer_files.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define PIECE_BYTES (8u << 20)
#define MAX_THREADS 64

/* ------------------------------------------------------------------------ */
/* Contents: a counter-based splitmix64 stream per tensor */

static inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t hoist__writer_tensor_key(uint64_t seed, const char *component, const char *tensor) {
  /* FNV-1a over "component/tensor", then mixed with the seed, so the two
   * Wan experts (same tensor names) get different bytes. */
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char *s = component; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
  h = (h ^ '/') * 0x100000001b3ull;
  for (const char *s = tensor; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
  return mix64(h ^ mix64(seed + 0x9e3779b97f4a7c15ull));
}

/* One element layout: bit width, exponent position and width, bias. */
typedef struct float_layout {
  unsigned bits, mant, exp_bits;
  int bias;
} float_layout;

static int float_layout_of(hoist_dtype d, float_layout *out) {
  switch (d) {
  case HOIST_DTYPE_BF16: *out = (float_layout){16, 7, 8, 127}; return 1;
  case HOIST_DTYPE_F16: *out = (float_layout){16, 10, 5, 15}; return 1;
  case HOIST_DTYPE_F32: *out = (float_layout){32, 23, 8, 127}; return 1;
  case HOIST_DTYPE_F64: *out = (float_layout){64, 52, 11, 1023}; return 1;
  default: return 0;
  }
}

hoist__writer_values hoist__writer_values_for(hoist_dtype dtype, uint32_t ndim,
                                              const uint64_t *shape) {
  float_layout f;
  if (!float_layout_of(dtype, &f)) return HOIST_WRITER_RAW_BITS;
  /* The largest magnitude wanted, as a power of two: 1/sqrt(fan-in). */
  double fan_in = 1.0;
  for (uint32_t i = 1; i < ndim; i++) fan_in *= (double)shape[i];
  int top = ndim >= 2 && fan_in > 1.0 ? -(int)ceil(0.5 * log2(fan_in)) : 0;
  /* Exponent fields base..base+3 (the two random low bits) give values in
   * [2^(base-bias), 2^(base+4-bias)); base is a multiple of four at least
   * four (normal numbers) and the top stays finite. */
  int base = f.bias + top - 4;
  int max_field = (1 << f.exp_bits) - 2;
  if (base > max_field - 3) base = max_field - 3;
  base &= ~3;
  if (base < 4) base = 4;
  uint64_t lane_keep = (1ull << (f.bits - 1)) | (3ull << f.mant) | ((1ull << f.mant) - 1);
  uint64_t lane_set = (uint64_t)base << f.mant;
  hoist__writer_values v = {0, 0};
  for (unsigned shift = 0; shift < 64; shift += f.bits) {
    v.keep |= lane_keep << shift;
    v.set |= lane_set << shift;
  }
  return v;
}

static inline uint64_t word_at(uint64_t key, hoist__writer_values v, uint64_t w) {
  return (mix64(key + w * 0x9e3779b97f4a7c15ull) & v.keep) | v.set;
}

void hoist__writer_fill(uint64_t key, hoist__writer_values v, uint64_t off, uint8_t *dst,
                        size_t len) {
  size_t done = 0;
  uint64_t w = off / 8;
  unsigned skip = (unsigned)(off % 8);
  if (skip != 0 && len > 0) {
    uint64_t x = word_at(key, v, w);
    uint8_t b[8];
    memcpy(b, &x, 8);
    size_t n = 8 - skip < len ? 8 - skip : len;
    memcpy(dst, b + skip, n);
    done = n;
    w++;
  }
  /* The hot loop: 8 independent words per iteration for the multipliers. */
  while (len - done >= 64) {
    uint64_t x[8];
    for (int i = 0; i < 8; i++) x[i] = word_at(key, v, w + (uint64_t)i);
    memcpy(dst + done, x, 64);
    done += 64;
    w += 8;
  }
  while (done < len) {
    uint64_t x = word_at(key, v, w);
    size_t n = len - done < 8 ? len - done : 8;
    memcpy(dst + done, &x, n);
    done += n;
    w++;
  }
  /* Never zeros: byte 0 of every tensor has its low bit set (for a float,
   * the mantissa's last bit). */
  if (off == 0 && len > 0) dst[0] |= 1;
}

/* ------------------------------------------------------------------------ */
/* Plan */

typedef struct wtensor {
  char *name;
  uint32_t ndim;
  uint64_t shape[HOIST_PRESET_MAX_DIMS];
  uint64_t nbytes;
  uint32_t shard;
  uint64_t begin;   /* data offset within its shard */
  uint64_t key;
  hoist__writer_values values;
} wtensor;

typedef struct wfile {
  char *rel;        /* component/name */
  const char *name; /* name, within rel */
  const char *shown; /* DIR/component/name for messages (owned by the dir writer) */
  char *header;     /* padded JSON */
  uint64_t header_len;
  uint64_t data_bytes;
  uint64_t size;
  size_t first, count; /* its tensors: order[first .. first+count) */
  int fd;           /* its temporary (owned by the dir writer) */
} wfile;

typedef struct wcomp {
  const hoist__preset_component *c;
  wtensor *t;       /* module order */
  size_t n, cap;
  wtensor **order;  /* file order: by shard, then name */
  wfile *files;     /* shards */
  uint32_t nfiles;
  uint64_t bytes;
  int folder;       /* its folder in the dir writer */
} wcomp;

typedef struct job {
  wfile *f;
  wcomp *wc;
  uint64_t begin, end; /* data-section range */
} job;

typedef struct writer {
  const hoist__preset *p;
  const char *dir;
  hoist__writer_options o;
  wcomp *comps;
  size_t ncomps;
  hoist__dirw *dw;   /* the folder, opened without following links */
  /* work */
  job *jobs;
  size_t njobs, capjobs;
  atomic_size_t next_job;
  atomic_uint_fast64_t done_bytes;
  atomic_int failed;
  atomic_uint finished;
  uv_mutex_t lock;
  char error[HOIST_ERROR_MAX];
  uint64_t total_bytes, file_bytes;
} writer;

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap * 2 : 16;
  while (n < need) n *= 2;
  void *p = realloc(*arr, n * elem);
  if (p == NULL) return -1;
  *arr = p;
  *cap = n;
  return 0;
}

static char *join3(const char *a, const char *b, const char *c) {
  size_t n = strlen(a) + strlen(b) + (c ? strlen(c) : 0) + 3;
  char *s = malloc(n);
  if (s == NULL) return NULL;
  if (c)
    snprintf(s, n, "%s/%s/%s", a, b, c);
  else
    snprintf(s, n, "%s/%s", a, b);
  return s;
}

static int collect(void *user, const hoist__preset_tensor *t) {
  wcomp *wc = user;
  if (grow((void **)&wc->t, &wc->cap, wc->n + 1, sizeof(wtensor)) != 0) return HOIST_NO_MEMORY;
  wtensor *w = &wc->t[wc->n];
  memset(w, 0, sizeof *w);
  w->name = hoist__strdup(t->name);
  if (w->name == NULL) return HOIST_NO_MEMORY;
  w->ndim = t->ndim;
  memcpy(w->shape, t->shape, t->ndim * sizeof(uint64_t));
  w->nbytes = t->nbytes;
  wc->n++;
  return 0;
}

static int cmp_file_order(const void *a, const void *b) {
  const wtensor *x = *(wtensor *const *)a, *y = *(wtensor *const *)b;
  if (x->shard != y->shard) return x->shard < y->shard ? -1 : 1;
  /* One dtype per component, so the writer's (alignment, name) order is
   * the name order, byte-wise as Rust compares strings. */
  return strcmp(x->name, y->name);
}

static int cmp_name(const void *a, const void *b) {
  return strcmp((*(wtensor *const *)a)->name, (*(wtensor *const *)b)->name);
}

/* A growable text buffer for headers. */
typedef struct sbuf {
  char *s;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) HOIST_PRINTF(2, 3);
static void sb_add(sbuf *b, const char *fmt, ...) {
  if (b->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->cap - b->n;
    int k = vsnprintf(b->s ? b->s + b->n : NULL, room, fmt, ap);
    va_end(ap);
    if (k < 0) {
      b->oom = 1;
      return;
    }
    if ((size_t)k < room) {
      b->n += (size_t)k;
      return;
    }
    size_t want = b->cap ? b->cap * 2 : 4096;
    while (want < b->n + (size_t)k + 1) want *= 2;
    char *p = realloc(b->s, want);
    if (p == NULL) {
      b->oom = 1;
      return;
    }
    b->s = p;
    b->cap = want;
  }
}

/* Builds the padded header of file f from its tensors, which must already
 * carry their data offsets. */
static int build_header(wcomp *wc, wfile *f) {
  sbuf b = {0};
  const char *dt = hoist_dtype_name(wc->c->dtype);
  sb_add(&b, "{\"__metadata__\":{\"format\":\"pt\"}");
  for (size_t i = 0; i < f->count; i++) {
    const wtensor *t = wc->order[f->first + i];
    sb_add(&b, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, dt);
    for (uint32_t d = 0; d < t->ndim; d++)
      sb_add(&b, "%s%llu", d ? "," : "", (unsigned long long)t->shape[d]);
    sb_add(&b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)t->begin,
           (unsigned long long)(t->begin + t->nbytes));
  }
  sb_add(&b, "}");
  while (!b.oom && b.n % 8 != 0) sb_add(&b, " ");
  if (b.oom) {
    free(b.s);
    return hoist__fail(NULL, HOIST_NO_MEMORY, "%s: out of memory building the header", f->rel);
  }
  f->header = b.s;
  f->header_len = b.n;
  uint64_t size;
  if (!hoist__add_u64(8, f->header_len, &size) || !hoist__add_u64(size, f->data_bytes, &size))
    return hoist__fail(NULL, HOIST_OVERFLOW, "%s: file size overflows", f->rel);
  f->size = size;
  return HOIST_OK;
}

static int plan_component(writer *w, wcomp *wc) {
  const hoist__preset_component *c = wc->c;
  int rc = hoist__preset_tensors(c, w->o.scale, collect, wc);
  if (rc != 0) return rc == HOIST_NO_MEMORY ? hoist__fail(NULL, rc, "out of memory") : rc;
  uint64_t total = 0;
  for (size_t i = 0; i < wc->n; i++)
    if (!hoist__add_u64(total, wc->t[i].nbytes, &total))
      return hoist__fail(NULL, HOIST_OVERFLOW, "%s: total size overflows", c->name);
  wc->bytes = total;
  uint64_t before = 0;
  for (size_t i = 0; i < wc->n; i++) {
    wtensor *t = &wc->t[i];
    t->shard = hoist__preset_shard_of(before, t->nbytes, total, c->shards);
    before += t->nbytes;
    t->key = hoist__writer_tensor_key(w->o.seed, c->name, t->name);
    t->values = hoist__writer_values_for(c->dtype, t->ndim, t->shape);
  }
  wc->order = malloc(wc->n * sizeof *wc->order);
  wc->nfiles = c->shards ? c->shards : 1;
  wc->files = calloc(wc->nfiles, sizeof *wc->files);
  if (wc->order == NULL || wc->files == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
  for (size_t i = 0; i < wc->n; i++) wc->order[i] = &wc->t[i];
  qsort(wc->order, wc->n, sizeof *wc->order, cmp_file_order);
  size_t i = 0;
  for (uint32_t k = 0; k < wc->nfiles; k++) {
    wfile *f = &wc->files[k];
    f->fd = -1;
    f->first = i;
    uint64_t off = 0;
    while (i < wc->n && wc->order[i]->shard == k) {
      wc->order[i]->begin = off;
      off += wc->order[i]->nbytes;
      i++;
    }
    f->count = i - f->first;
    f->data_bytes = off;
    /* The midpoint rule cannot leave a shard empty unless one tensor is
     * larger than total / shards; the presets never are. */
    if (f->count == 0)
      return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "%s: shard %u of %u would be empty at scale %g",
                        c->name, k + 1, wc->nfiles, w->o.scale);
    char name[128];
    hoist__preset_shard_name(c, k, name, sizeof name);
    f->rel = join3(c->name, name, NULL);
    if (f->rel == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
    f->name = f->rel + strlen(c->name) + 1;
    rc = build_header(wc, f);
    if (rc != HOIST_OK) return rc;
  }
  return HOIST_OK;
}

/* ------------------------------------------------------------------------ */
/* Files */

static int write_json(writer *w, int folder, const char *name, cJSON *root) {
  char *text = root ? cJSON_Print(root) : NULL;
  cJSON_Delete(root);
  if (text == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "%s: out of memory", name);
  size_t n = strlen(text);
  char *t2 = malloc(n + 2);
  if (t2 == NULL) {
    cJSON_free(text);
    return hoist__fail(NULL, HOIST_NO_MEMORY, "%s: out of memory", name);
  }
  memcpy(t2, text, n);
  t2[n] = '\n';
  t2[n + 1] = '\0';
  cJSON_free(text);
  int rc = hoist__dirw_write(w->dw, folder, name, t2, n + 1);
  if (rc == HOIST_OK) w->file_bytes += n + 1;
  free(t2);
  return rc;
}

static int write_text(writer *w, int folder, const char *name, const char *text) {
  size_t len = strlen(text);
  int rc = hoist__dirw_write(w->dw, folder, name, text, len);
  if (rc == HOIST_OK) w->file_bytes += len;
  return rc;
}

/* A tokenizer folder's generated vocabulary files. */
static int write_vocab(writer *w, int folder, hoist__vocab_kind kind) {
  hoist__vocab_file files[HOIST_VOCAB_MAX_FILES];
  size_t n = 0;
  int rc = hoist__vocab_files(kind, files, &n);
  if (rc != HOIST_OK) return hoist__fail(NULL, rc, "out of memory generating a vocabulary");
  for (size_t k = 0; k < n && rc == HOIST_OK; k++) rc = write_text(w, folder, files[k].name, files[k].text);
  hoist__vocab_files_free(files, n);
  return rc;
}

static int write_model_index(writer *w) {
  const hoist__preset *p = w->p;
  cJSON *root = cJSON_CreateObject();
  if (root == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
  cJSON_AddStringToObject(root, "_class_name", p->class_name);
  cJSON_AddStringToObject(root, "_diffusers_version", p->diffusers_version);
  if (p->extra_config_json) {
    cJSON *extra = cJSON_Parse(p->extra_config_json);
    cJSON *item = extra ? extra->child : NULL;
    while (item) {
      cJSON *next = item->next;
      cJSON_AddItemToObject(root, item->string, cJSON_DetachItemViaPointer(extra, item));
      item = next;
    }
    cJSON_Delete(extra);
  }
  for (size_t i = 0; i < p->component_count; i++) {
    const hoist__preset_component *c = &p->components[i];
    const char *pair[2] = {c->library, c->class_name};
    cJSON_AddItemToObject(root, c->name, cJSON_CreateStringArray(pair, 2));
  }
  return write_json(w, HOIST_DIRW_ROOT, "model_index.json", root);
}

static int write_index(writer *w, wcomp *wc) {
  char name[128];
  hoist__preset_index_name(wc->c, name, sizeof name);
  wtensor **byname = malloc(wc->n * sizeof *byname);
  cJSON *root = cJSON_CreateObject();
  cJSON *meta = root ? cJSON_AddObjectToObject(root, "metadata") : NULL;
  cJSON *map = root ? cJSON_AddObjectToObject(root, "weight_map") : NULL;
  int rc = HOIST_OK;
  if (byname == NULL || meta == NULL || map == NULL) {
    rc = hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
    goto fail;
  }
  cJSON_AddNumberToObject(meta, "total_size", (double)wc->bytes);
  for (size_t i = 0; i < wc->n; i++) byname[i] = &wc->t[i];
  qsort(byname, wc->n, sizeof *byname, cmp_name);
  for (size_t i = 0; i < wc->n; i++) {
    char shard[128];
    hoist__preset_shard_name(wc->c, byname[i]->shard, shard, sizeof shard);
    if (cJSON_AddStringToObject(map, byname[i]->name, shard) == NULL) {
      rc = hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
      goto fail;
    }
  }
  rc = write_json(w, wc->folder, name, root);
  root = NULL;
fail:
  cJSON_Delete(root);
  free(byname);
  return rc;
}

static int write_small_files(writer *w) {
  int rc = write_model_index(w);
  if (rc != HOIST_OK) return rc;
  for (size_t i = 0; i < w->ncomps; i++) {
    wcomp *wc = &w->comps[i];
    const hoist__preset_component *c = wc->c;
    rc = hoist__dirw_folder(w->dw, c->name, &wc->folder);
    if (rc != HOIST_OK) return rc;
    if (c->config_json) {
      rc = write_text(w, wc->folder, "config.json", c->config_json);
      if (rc != HOIST_OK) return rc;
    }
    for (size_t k = 0; k < c->file_count; k++) {
      rc = write_text(w, wc->folder, c->files[k].name, c->files[k].text);
      if (rc != HOIST_OK) return rc;
    }
    rc = write_vocab(w, wc->folder, c->vocab);
    if (rc != HOIST_OK) return rc;
    if (c->kind == HOIST_PRESET_WEIGHTS && c->shards > 1) {
      rc = write_index(w, wc);
      if (rc != HOIST_OK) return rc;
    }
  }
  return HOIST_OK;
}

/* Creates every weight file's temporary and writes its 8-byte length and
 * header.  No
 * fallocate: on tmpfs it doubles the cost of the write, and a full disk is
 * caught by the free-space check before and by every pwrite during. */
static int open_weight_files(writer *w) {
  for (size_t i = 0; i < w->ncomps; i++) {
    wcomp *wc = &w->comps[i];
    for (uint32_t k = 0; k < wc->nfiles && wc->c->kind == HOIST_PRESET_WEIGHTS; k++) {
      wfile *f = &wc->files[k];
      size_t id;
      int rc = hoist__dirw_create(w->dw, wc->folder, f->name, &id, &f->fd);
      if (rc != HOIST_OK) return rc;
      f->shown = hoist__dirw_shown(w->dw, id);
      uint8_t len8[8];
      for (int b = 0; b < 8; b++) len8[b] = (uint8_t)(f->header_len >> (8 * b));
      int e = hoist__pwrite_all(f->fd, len8, 8, 0);
      if (e == 0) e = hoist__pwrite_all(f->fd, f->header, f->header_len, 8);
      if (e != 0) return hoist__fail(NULL, HOIST_IO, "%s: write failed: %s", f->shown, strerror(e));
      w->file_bytes += f->size;
      /* Jobs: PIECE_BYTES pieces of the data section. */
      for (uint64_t b = 0; b < f->data_bytes; b += PIECE_BYTES) {
        if (grow((void **)&w->jobs, &w->capjobs, w->njobs + 1, sizeof(job)) != 0)
          return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
        uint64_t e2 = b + PIECE_BYTES < f->data_bytes ? b + PIECE_BYTES : f->data_bytes;
        w->jobs[w->njobs++] = (job){f, wc, b, e2};
      }
    }
  }
  return HOIST_OK;
}

/* ------------------------------------------------------------------------ */
/* Workers */

static void run_job(writer *w, const job *j, uint8_t *buf) {
  const wfile *f = j->f;
  wtensor *const *ord = j->wc->order + f->first;
  /* First tensor overlapping j->begin: binary search on begin. */
  size_t lo = 0, hi = f->count;
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (ord[mid]->begin <= j->begin)
      lo = mid;
    else
      hi = mid;
  }
  uint64_t pos = j->begin;
  for (size_t i = lo; i < f->count && pos < j->end; i++) {
    const wtensor *t = ord[i];
    uint64_t tend = t->begin + t->nbytes;
    if (tend <= pos) continue;
    uint64_t segend = tend < j->end ? tend : j->end;
    hoist__writer_fill(t->key, t->values, pos - t->begin, buf + (pos - j->begin), (size_t)(segend - pos));
    pos = segend;
  }
  int e = hoist__pwrite_all(f->fd, buf, (size_t)(j->end - j->begin), 8 + f->header_len + j->begin);
  if (e != 0) {
    uv_mutex_lock(&w->lock);
    if (!atomic_load(&w->failed))
      snprintf(w->error, sizeof w->error, "%s: write failed at offset %llu: %s", f->shown,
               (unsigned long long)(8 + f->header_len + j->begin), strerror(e));
    atomic_store(&w->failed, 1);
    uv_mutex_unlock(&w->lock);
    return;
  }
  atomic_fetch_add(&w->done_bytes, j->end - j->begin);
}

static void worker(void *arg) {
  writer *w = arg;
  uint8_t *buf = malloc(PIECE_BYTES);
  if (buf == NULL) {
    uv_mutex_lock(&w->lock);
    if (!atomic_load(&w->failed)) snprintf(w->error, sizeof w->error, "out of memory in a writer thread");
    atomic_store(&w->failed, 1);
    uv_mutex_unlock(&w->lock);
  }
  while (buf != NULL && !atomic_load(&w->failed)) {
    size_t k = atomic_fetch_add(&w->next_job, 1);
    if (k >= w->njobs) break;
    run_job(w, &w->jobs[k], buf);
  }
  free(buf);
  atomic_fetch_add(&w->finished, 1);
}

static int run_workers(writer *w) {
  uint32_t n = w->o.threads;
  if (n == 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    n = cpus < 1 ? 1 : cpus > 8 ? 8 : (uint32_t)cpus;
  }
  if (n > w->njobs && w->njobs > 0) n = (uint32_t)w->njobs;
  uv_thread_t tids[MAX_THREADS];
  uint32_t started = 0;
  for (; started < n; started++)
    if (uv_thread_create(&tids[started], worker, w) != 0) break;
  if (started == 0) worker(w); /* no thread could start: do the work here */
  while (started > 0 && atomic_load(&w->finished) < started) {
    if (w->o.progress) w->o.progress(w->o.progress_user, atomic_load(&w->done_bytes), w->total_bytes);
    struct timespec ts = {0, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  for (uint32_t i = 0; i < started; i++) uv_thread_join(&tids[i]);
  if (w->o.progress) w->o.progress(w->o.progress_user, atomic_load(&w->done_bytes), w->total_bytes);
  if (atomic_load(&w->failed)) return hoist__fail(NULL, HOIST_IO, "%s", w->error);
  return HOIST_OK;
}

/* ------------------------------------------------------------------------ */
/* Entry */

static int check_empty(writer *w) {
  int empty;
  int rc = hoist__dirw_is_empty(w->dw, &empty);
  if (rc == HOIST_OK && !empty && !w->o.force)
    rc = hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "%s: exists and is not empty (use --force to write into it)",
                    hoist__dirw_shown_root(w->dw));
  return rc;
}

/* Refuses early when the file system cannot hold the tensor data.  Files
 * being replaced with --force do not count as free: their new bytes are
 * written beside them before the renames. */
static int check_space(writer *w) {
  struct statvfs sv;
  if (fstatvfs(hoist__dirw_root_fd(w->dw), &sv) != 0) return HOIST_OK;
  uint64_t avail;
  if (!hoist__mul_u64((uint64_t)sv.f_bavail, (uint64_t)sv.f_frsize, &avail)) return HOIST_OK;
  if (avail >= w->total_bytes) return HOIST_OK;
  return hoist__fail(NULL, HOIST_IO, "%s: %s: need %llu bytes of tensor data, %llu available",
                    hoist__dirw_shown_root(w->dw), strerror(ENOSPC), (unsigned long long)w->total_bytes,
                    (unsigned long long)avail);
}

/* Calls fn with the component-relative name of every file of wc, in the
 * order the result lists them: config.json, the weightless files, the
 * generated vocabulary, the index, the shards.  Stops at the first status that is not HOIST_OK. */
typedef int (*file_fn)(void *user, const char *component, const char *name);

static int each_file(const wcomp *wc, file_fn fn, void *user) {
  const hoist__preset_component *c = wc->c;
  char name[128];
  int rc = c->config_json ? fn(user, c->name, "config.json") : HOIST_OK;
  for (size_t k = 0; rc == HOIST_OK && k < c->file_count; k++) rc = fn(user, c->name, c->files[k].name);
  const char *vocab[HOIST_VOCAB_MAX_FILES];
  size_t nvocab = hoist__vocab_file_names(c->vocab, vocab);
  for (size_t k = 0; rc == HOIST_OK && k < nvocab; k++) rc = fn(user, c->name, vocab[k]);
  if (c->kind != HOIST_PRESET_WEIGHTS) return rc;
  if (rc == HOIST_OK && c->shards > 1) {
    hoist__preset_index_name(c, name, sizeof name);
    rc = fn(user, c->name, name);
  }
  for (uint32_t k = 0; rc == HOIST_OK && k < wc->nfiles; k++) {
    hoist__preset_shard_name(c, k, name, sizeof name);
    rc = fn(user, c->name, name);
  }
  return rc;
}

static int check_file(void *user, const char *component, const char *name) {
  writer *w = user;
  char *rel = join3(component, name, NULL);
  if (rel == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
  int rc = hoist__dirw_check(w->dw, rel, 0);
  free(rel);
  return rc;
}

/* Before anything is written: no name this run writes may be a link (a
 * Hugging Face snapshot links every file to ../../blobs) or go through one
 * (a linked component folder), nor be a folder where a file goes. */
static int check_targets(writer *w) {
  int rc = hoist__dirw_check(w->dw, "model_index.json", 0);
  for (size_t i = 0; rc == HOIST_OK && i < w->ncomps; i++) {
    rc = hoist__dirw_check(w->dw, w->comps[i].c->name, 1);
    if (rc == HOIST_OK) rc = each_file(&w->comps[i], check_file, w);
  }
  return rc;
}

static int add_file(void *user, const char *component, const char *name) {
  hoist__written_component *rc = user;
  if ((rc->files[rc->file_count] = join3(component, name, NULL)) == NULL)
    return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
  rc->file_count++;
  return HOIST_OK;
}

static int fill_result(writer *w, hoist__write_result *out) {
  memset(out, 0, sizeof *out);
  out->components = calloc(w->ncomps, sizeof *out->components);
  if (out->components == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
  out->count = w->ncomps;
  out->total_bytes = w->total_bytes;
  out->file_bytes = w->file_bytes;
  for (size_t i = 0; i < w->ncomps; i++) {
    wcomp *wc = &w->comps[i];
    const hoist__preset_component *c = wc->c;
    hoist__written_component *rc = &out->components[i];
    rc->name = hoist__strdup(c->name);
    rc->bytes = wc->bytes;
    const char *vocab[HOIST_VOCAB_MAX_FILES];
    size_t nf = c->file_count + (c->config_json ? 1 : 0) + hoist__vocab_file_names(c->vocab, vocab) +
                (c->kind == HOIST_PRESET_WEIGHTS ? wc->nfiles + (c->shards > 1) : 0);
    rc->files = calloc(nf ? nf : 1, sizeof(char *));
    if (rc->name == NULL || rc->files == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
    int status = each_file(wc, add_file, rc);
    if (status != HOIST_OK) return status;
  }
  return HOIST_OK;
}

static void free_writer(writer *w) {
  for (size_t i = 0; i < w->ncomps; i++) {
    wcomp *wc = &w->comps[i];
    for (size_t k = 0; k < wc->n; k++) free(wc->t[k].name);
    free(wc->t);
    free(wc->order);
    for (uint32_t k = 0; wc->files && k < wc->nfiles; k++) {
      free(wc->files[k].rel);
      free(wc->files[k].header);
    }
    free(wc->files);
  }
  free(w->comps);
  hoist__dirw_free(w->dw);
  free(w->jobs);
}

int hoist__pipeline_write(const hoist__preset *p, const char *dir,
                         const hoist__writer_options *opts, hoist__write_result *out) {
  hoist__writer_options defaults = HOIST_WRITER_OPTIONS_INIT;
  writer w;
  memset(&w, 0, sizeof w);
  w.p = p;
  w.dir = dir;
  w.o = opts ? *opts : defaults;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (p == NULL || dir == NULL || dir[0] == '\0' || out == NULL)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "make-pipeline: preset, folder and result are required");
  memset(out, 0, sizeof *out);
  if (!hoist__preset_scale_valid(w.o.scale))
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "scale %g is not in (0, 1]", w.o.scale);
  if (w.o.threads > MAX_THREADS)
    return hoist__fail(NULL, HOIST_INVALID_ARGUMENT, "threads %u is above %d", w.o.threads, MAX_THREADS);
  if (uv_mutex_init(&w.lock) != 0) return hoist__fail(NULL, HOIST_NO_MEMORY, "cannot create a mutex");
  atomic_init(&w.next_job, 0);
  atomic_init(&w.done_bytes, 0);
  atomic_init(&w.failed, 0);
  atomic_init(&w.finished, 0);
  int rc;
  w.comps = calloc(p->component_count, sizeof *w.comps);
  if (w.comps == NULL) {
    rc = hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory");
    goto fail;
  }
  w.ncomps = p->component_count;
  for (size_t i = 0; i < w.ncomps; i++) {
    w.comps[i].c = &p->components[i];
    if (p->components[i].kind != HOIST_PRESET_WEIGHTS) continue;
    rc = plan_component(&w, &w.comps[i]);
    if (rc != HOIST_OK) goto fail;
    if (!hoist__add_u64(w.total_bytes, w.comps[i].bytes, &w.total_bytes)) {
      rc = hoist__fail(NULL, HOIST_OVERFLOW, "total size overflows");
      goto fail;
    }
  }
  rc = hoist__dirw_open(dir, &w.dw);
  if (rc != HOIST_OK) goto fail;
  rc = check_empty(&w);
  if (rc == HOIST_OK) rc = check_space(&w);
  if (rc == HOIST_OK) rc = check_targets(&w);
  if (rc == HOIST_OK) rc = write_small_files(&w);
  if (rc == HOIST_OK) rc = open_weight_files(&w);
  if (rc == HOIST_OK) rc = run_workers(&w);
  if (rc == HOIST_OK) rc = fill_result(&w, out);
  if (rc == HOIST_OK) rc = hoist__dirw_commit(w.dw);
  if (rc != HOIST_OK) {
    hoist__write_result_free(out);
    hoist__dirw_abort(w.dw);
    goto fail;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  out->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
fail:
  free_writer(&w);
  uv_mutex_destroy(&w.lock);
  return rc;
}

void hoist__write_result_free(hoist__write_result *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->count; i++) {
    for (size_t k = 0; k < r->components[i].file_count; k++) free(r->components[i].files[k]);
    free(r->components[i].files);
    free(r->components[i].name);
  }
  free(r->components);
  memset(r, 0, sizeof *r);
}
