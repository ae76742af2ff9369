/* manifest_make.c — hoist_manifest_create: the manifest of a pipeline as
 * discovery finds it (its weight files, and the side files listed in
 * manifest.h), every file read once by manifest_hash.c. */
#include "manifest.h"
#include "manifest_hash.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- Side files */

typedef struct path_list {
  char **v;
  size_t n;
} path_list;

static void paths_free(char **v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

/* Adds dir/name when it is a regular file (links followed).  Folders hold
 * a few side files: the list grows one entry at a time. */
static bool add_if_file(path_list *l, const char *dir, const char *name) {
  char *path = hoist__manifest_join(dir, name);
  struct stat st;
  if (path == NULL) return false;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
    free(path);
    return true;
  }
  char **grown = realloc(l->v, (l->n + 1) * sizeof *l->v);
  if (grown == NULL) {
    free(path);
    return false;
  }
  l->v = grown;
  l->v[l->n++] = path;
  return true;
}

/* A shard index of any variant: *.safetensors.index.json or
 * *.safetensors.index.<V>.json. */
static bool is_index(const char *name) {
  const char *at = strstr(name, ".safetensors.index.");
  if (at == NULL || name[0] == '.') return false;
  const char *rest = at + strlen(".safetensors.index.");
  size_t len = strlen(rest);
  return strcmp(rest, "json") == 0 ||
         (len > 5 && strcmp(rest + len - 5, ".json") == 0 && memchr(rest, '.', len - 5) == NULL);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* config.json and the shard indexes of one folder, indexes sorted. */
static bool scan_folder(path_list *l, const char *dir) {
  if (!add_if_file(l, dir, "config.json")) return false;
  DIR *d = opendir(dir);
  if (d == NULL) return true; /* a component without a folder has no side files */
  size_t first = l->n;
  bool ok = true;
  for (struct dirent *e; ok && (e = readdir(d)) != NULL;)
    if (is_index(e->d_name)) ok = add_if_file(l, dir, e->d_name);
  closedir(d);
  if (ok && l->n > first) qsort(l->v + first, l->n - first, sizeof *l->v, cmp_str);
  return ok;
}

int hoist__manifest_side_files(hoist_runtime *rt, const hoist_pipeline *p, char ***out, size_t *n) {
  path_list l = {0};
  char *base = hoist__manifest_base(hoist_pipeline_path(p));
  bool ok = base != NULL && add_if_file(&l, base, "model_index.json");
  for (size_t i = 0; ok && i < hoist_pipeline_component_count(p); i++) {
    const hoist_component_info *c = hoist_pipeline_component(p, i);
    if (!c->folder_missing) ok = scan_folder(&l, c->path);
  }
  free(base);
  if (!ok) {
    paths_free(l.v, l.n);
    return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory listing side files");
  }
  *out = l.v;
  *n = l.n;
  return HOIST_OK;
}

/* ---- The manifest */

/* What a manifest is made from: the pipeline's files, as hash items with
 * their relative paths. */
typedef struct make_run {
  hoist_runtime *rt;
  hoist_pipeline *p;
  char *base;
  hoist__hash_item *items;
  char **rel;          /* per item */
  size_t nweights, n;
  char **sides;        /* side files' full paths */
  size_t nsides;
} make_run;

static void run_free(make_run *r) {
  hoist__hash_items_free(r->items, r->n);
  free(r->items);
  paths_free(r->rel, r->n);
  paths_free(r->sides, r->nsides);
  free(r->base);
  hoist_pipeline_close(r->p);
}

static int add_item(make_run *r, const char *path, const hoist_file *st) {
  char pb[HOIST_SHOW_PATH];
  hoist__hash_item *it = &r->items[r->n];
  char *rel = hoist__manifest_relpath(r->base, path);
  if (rel == NULL || !hoist__manifest_path_ok(rel)) {
    free(rel);
    return hoist__fail(r->rt, HOIST_BAD_PIPELINE, "%s: not a path inside the pipeline folder",
                       hoist__show(path, pb, sizeof pb));
  }
  r->rel[r->n++] = rel;
  *it = (hoist__hash_item){.path = path, .label = rel, .st = st, .want_size = UINT64_MAX};
  return HOIST_OK;
}

/* Every weight file of every component (safetensors with their opened
 * file), then every side file. */
static int collect(make_run *r) {
  const hoist_pipeline *p = r->p;
  size_t total = 0;
  for (size_t i = 0; i < hoist_pipeline_component_count(p); i++)
    total += hoist_pipeline_component(p, i)->file_count;
  int rc = hoist__manifest_side_files(r->rt, p, &r->sides, &r->nsides);
  if (rc != HOIST_OK) return rc;
  total += r->nsides;
  r->items = calloc(total > 0 ? total : 1, sizeof *r->items);
  r->rel = calloc(total > 0 ? total : 1, sizeof *r->rel);
  if (r->items == NULL || r->rel == NULL)
    return hoist__fail(r->rt, HOIST_NO_MEMORY, "out of memory listing files");
  for (size_t i = 0; i < hoist_pipeline_component_count(p) && rc == HOIST_OK; i++) {
    const hoist_component_info *c = hoist_pipeline_component(p, i);
    hoist_file *const *st = NULL;
    size_t nst = hoist__pipeline_safetensors(p, i, &st);
    for (size_t k = 0; k < c->file_count && rc == HOIST_OK; k++)
      rc = add_item(r, c->files[k], k < nst ? st[k] : NULL);
  }
  r->nweights = r->n;
  for (size_t i = 0; i < r->nsides && rc == HOIST_OK; i++) rc = add_item(r, r->sides[i], NULL);
  return rc;
}

/* The tensors of item it (a safetensors file) with their pieces. */
static bool record_tensors(manifest_file *f, const hoist__hash_item *it, uint64_t piece) {
  const hoist_file *st = it->st;
  size_t n = hoist_file_tensor_count(st), used = 0;
  f->safetensors = 1;
  f->header_bytes = hoist_file_data_offset(st);
  f->header_xxh3 = it->header_xxh3;
  if ((f->tensors = calloc(n > 0 ? n : 1, sizeof *f->tensors)) == NULL) return false;
  for (size_t t = 0; t < n; t++) {
    const hoist_tensor_info *ti = hoist_file_tensor(st, t);
    manifest_tensor *mt = &f->tensors[f->ntensors++];
    uint64_t np = hoist__manifest_pieces(ti->nbytes, piece);
    mt->name = hoist__strdup(ti->name);
    mt->dtype = ti->dtype;
    mt->begin = ti->begin;
    mt->end = ti->end;
    if (mt->name == NULL || !hoist__manifest_tensor_alloc(mt, ti->ndim, np)) return false;
    if (ti->ndim > 0) memcpy(mt->shape, ti->shape, ti->ndim * sizeof *mt->shape);
    if (np > 0) memcpy(mt->pieces, it->pieces + used, (size_t)np * sizeof *mt->pieces);
    used += (size_t)np;
  }
  return true;
}

/* The manifest of the hashed items. */
static int build(make_run *r, uint64_t piece, const char *variant, hoist_manifest **out) {
  hoist_manifest *m = hoist__manifest_new(piece, variant);
  if (m == NULL || (m->files = calloc(r->n > 0 ? r->n : 1, sizeof *m->files)) == NULL) {
    hoist_manifest_close(m);
    return hoist__fail(r->rt, HOIST_NO_MEMORY, "out of memory making a manifest");
  }
  m->nweights = r->nweights;
  bool ok = true;
  for (size_t i = 0; i < r->n && ok; i++) {
    const hoist__hash_item *it = &r->items[i];
    manifest_file *f = &m->files[m->nfiles++];
    f->path = hoist__strdup(r->rel[i]);
    f->pub.size = it->size;
    hoist__hex(it->sha256, 32, f->sha256);
    ok = f->path != NULL && (it->st == NULL || record_tensors(f, it, piece));
  }
  char pb[HOIST_SHOW_PATH];
  int rc = ok ? hoist__manifest_finish(r->rt, m, HOIST_BAD_PIPELINE,
                                       hoist__show(hoist_pipeline_path(r->p), pb, sizeof pb))
              : hoist__fail(r->rt, HOIST_NO_MEMORY, "out of memory making a manifest");
  if (rc != HOIST_OK) {
    hoist_manifest_close(m);
    return rc;
  }
  *out = m;
  return HOIST_OK;
}

int hoist__manifest_options_check(hoist_runtime *rt, const hoist_manifest_options *o) {
  if (o->struct_size != sizeof(hoist_manifest_options))
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                       "hoist_manifest_options.struct_size mismatch (use "
                       "HOIST_MANIFEST_OPTIONS_INIT)");
  uint64_t piece = o->piece_bytes;
  if (piece != 0 && (piece < HOIST_MANIFEST_MIN_PIECE || piece > HOIST_MANIFEST_MAX_PIECE ||
                     (piece & (piece - 1)) != 0))
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                       "`piece_bytes` %llu: a power of two from 64 KiB to 1 GiB",
                       (unsigned long long)piece);
  return HOIST_OK;
}

int hoist_manifest_create(hoist_runtime *rt, const char *path, const hoist_manifest_options *opts,
                          hoist_manifest **out) {
  hoist_manifest_options defaults = HOIST_MANIFEST_OPTIONS_INIT;
  const hoist_manifest_options *o = opts != NULL ? opts : &defaults;
  *out = NULL;
  int rc = hoist__manifest_options_check(rt, o);
  if (rc != HOIST_OK) return rc;
  const uint64_t piece = o->piece_bytes != 0 ? o->piece_bytes : HOIST_MANIFEST_DEFAULT_PIECE;
  make_run r = {.rt = rt};
  hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
  po.variant = o->variant;
  rc = hoist_pipeline_open(rt, path, &po, &r.p);
  if (rc == HOIST_OK && (r.base = hoist__manifest_base(hoist_pipeline_path(r.p))) == NULL)
    rc = hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  if (rc == HOIST_OK) rc = collect(&r);
  hoist__hash_opts ho = {piece, o->threads, o->progress, o->progress_user, o->cancel};
  if (rc == HOIST_OK) rc = hoist__hash_files(rt, r.items, r.n, &ho);
  for (size_t i = 0; i < r.n && rc == HOIST_OK; i++)
    if (r.items[i].status != HOIST_OK)
      rc = hoist__fail(rt, r.items[i].status, "%s", r.items[i].detail);
  if (rc == HOIST_OK) rc = build(&r, piece, o->variant, out);
  run_free(&r);
  return rc;
}
