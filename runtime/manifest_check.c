/* manifest_check.c — hoist_manifest_check: the whole-file SHA-256 of every
 * file a manifest records, hashed in parallel (manifest_hash.c), then the
 * pipeline's own weight and side files that the manifest lacks.  Files are
 * opened by the manifest's relative paths, which the reader allowed only
 * inside the pipeline folder (no absolute path, no ".."). */
#include "manifest.h"
#include "manifest_hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct check_run {
  hoist_runtime *rt;
  const hoist_manifest *m;
  const hoist_manifest_options *o;
  char *base;
  hoist__hash_item *items;
  char **full;      /* per manifest file: its path under base */
  int first;        /* status of the first difference (HOIST_OK: none yet) */
  char first_msg[HOIST_ERROR_MAX];
} check_run;

static void run_free(check_run *r) {
  for (size_t i = 0; r->full != NULL && i < r->m->nfiles; i++) free(r->full[i]);
  free(r->full);
  free(r->items);
  free(r->base);
}

/* Hands a verdict to the caller, and keeps the first difference's message. */
static void report(check_run *r, const hoist_manifest_result *res) {
  if (r->o->result != NULL) r->o->result(r->o->result_user, res);
  if (res->verdict == HOIST_MANIFEST_MATCH || r->first != HOIST_OK) return;
  char pb[HOIST_SHOW_PATH];
  const char *shown = hoist__show(res->path, pb, sizeof pb);
  const char *kind = res->side_file ? "side file" : "weight file";
  r->first = HOIST_MANIFEST_MISMATCH;
  switch (res->verdict) {
  case HOIST_MANIFEST_SIZE:
    snprintf(r->first_msg, sizeof r->first_msg, "%s: %llu bytes, the manifest records %llu",
             shown, (unsigned long long)res->size, (unsigned long long)res->expected_size);
    break;
  case HOIST_MANIFEST_SHA256:
    snprintf(r->first_msg, sizeof r->first_msg, "%s: SHA-256 %s, the manifest records %s", shown,
             res->sha256, res->expected_sha256);
    break;
  case HOIST_MANIFEST_MISSING:
    snprintf(r->first_msg, sizeof r->first_msg, "%s: recorded in the manifest but unreadable: %s",
             shown, res->detail);
    break;
  default:
    snprintf(r->first_msg, sizeof r->first_msg, "%s: a %s of the pipeline that the manifest "
             "does not list", shown, kind);
    break;
  }
}

/* The verdict on manifest file i from its hash item. */
static void judge(check_run *r, size_t i) {
  const manifest_file *f = &r->m->files[i];
  const hoist__hash_item *it = &r->items[i];
  char hex[65] = "";
  hoist_manifest_result res = {f->path, i >= r->m->nweights, HOIST_MANIFEST_MATCH, it->size,
                               f->pub.size, hex, f->sha256, ""};
  if (it->status != HOIST_OK) {
    res.verdict = HOIST_MANIFEST_MISSING;
    res.size = 0;
    res.detail = it->detail;
  } else if (it->sized_out) {
    res.verdict = HOIST_MANIFEST_SIZE;
  } else {
    hoist__hex(it->sha256, 32, hex);
    if (strcmp(hex, f->sha256) != 0) res.verdict = HOIST_MANIFEST_SHA256;
  }
  report(r, &res);
}

/* Reports the file at full path (a weight or side file of the pipeline)
 * when the manifest does not list it. */
static int extra(check_run *r, const char *path, int side) {
  char *rel = hoist__manifest_relpath(r->base, path);
  if (rel == NULL) return hoist__fail(r->rt, HOIST_NO_MEMORY, "out of memory");
  if (hoist__manifest_find(r->m, rel, side) == NULL) {
    hoist_manifest_result res = {rel, side, HOIST_MANIFEST_EXTRA, 0, 0, "", "", ""};
    report(r, &res);
  }
  free(rel);
  return HOIST_OK;
}

/* Discovery's weight files and the side files, against the manifest.  A
 * discovery that fails is the check's failure when nothing differed
 * before (its detail names the file). */
static int extras(check_run *r, const char *path) {
  hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
  po.variant = r->o->variant != NULL ? r->o->variant : r->m->variant;
  hoist_pipeline *p = NULL;
  char **sides = NULL;
  size_t nsides = 0;
  int rc = hoist_pipeline_open(r->rt, path, &po, &p);
  if (rc != HOIST_OK) return r->first != HOIST_OK ? HOIST_OK : rc;
  for (size_t i = 0; i < hoist_pipeline_component_count(p) && rc == HOIST_OK; i++) {
    const hoist_component_info *c = hoist_pipeline_component(p, i);
    for (size_t k = 0; k < c->file_count && rc == HOIST_OK; k++) rc = extra(r, c->files[k], 0);
  }
  if (rc == HOIST_OK) rc = hoist__manifest_side_files(r->rt, p, &sides, &nsides);
  for (size_t i = 0; i < nsides && rc == HOIST_OK; i++) rc = extra(r, sides[i], 1);
  for (size_t i = 0; i < nsides; i++) free(sides[i]);
  free(sides);
  hoist_pipeline_close(p);
  return rc;
}

int hoist_manifest_check(hoist_runtime *rt, const hoist_manifest *m, const char *path,
                         const hoist_manifest_options *opts) {
  hoist_manifest_options defaults = HOIST_MANIFEST_OPTIONS_INIT;
  check_run r = {.rt = rt, .m = m, .o = opts != NULL ? opts : &defaults};
  int rc = hoist__manifest_options_check(rt, r.o);
  if (rc != HOIST_OK) return rc;
  const size_t n = m->nfiles;
  r.base = hoist__manifest_base(path);
  r.items = calloc(n > 0 ? n : 1, sizeof *r.items);
  r.full = calloc(n > 0 ? n : 1, sizeof *r.full);
  for (size_t i = 0; r.base != NULL && r.full != NULL && r.items != NULL && i < n; i++) {
    if ((r.full[i] = hoist__manifest_join(r.base, m->files[i].path)) == NULL) break;
    r.items[i] = (hoist__hash_item){.path = r.full[i], .label = m->files[i].path,
                                    .want_size = m->files[i].pub.size};
  }
  if (r.base == NULL || r.items == NULL || r.full == NULL || (n > 0 && r.full[n - 1] == NULL)) {
    run_free(&r);
    return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory checking a manifest");
  }
  hoist__hash_opts ho = {m->piece_bytes, r.o->threads, r.o->progress, r.o->progress_user,
                         r.o->cancel};
  rc = hoist__hash_files(rt, r.items, n, &ho);
  for (size_t i = 0; i < n && rc == HOIST_OK; i++) judge(&r, i);
  if (rc == HOIST_OK) rc = extras(&r, path);
  if (rc == HOIST_OK && r.first != HOIST_OK) rc = hoist__fail(rt, r.first, "%s", r.first_msg);
  run_free(&r);
  return rc;
}
