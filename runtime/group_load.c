/* group_load.c — a load with ranks (group_load.h).
 *
 * Every step that may fail on one rank ends in a vote: each rank sends its
 * status (and a decision), and all go on or all stop with the same status,
 * the detail naming the rank that failed first (a rank that stopped only
 * because another told it to never wins).  A voted failure leaves the
 * group usable; a failure between votes (a bad file mid-upload, a cancel)
 * first stops the other ranks' uploads, and the vote after the upload
 * brings its reason to all.  What cannot be voted (a rank gone) fails the
 * group, and every rank waiting in an exchange returns that.
 *
 * The plan vote compares a summary of each rank's plan, one line per
 * item (options, load order, each component's residency, target dtype and
 * a checksum of its files' tensor tables), with rank 0's, so a mismatch
 * names the first line that differs.
 *
 * A replicated component (one with no split tensor, placed on the device)
 * is read once across the ranks: its span, identical on every rank, is cut
 * at tensor boundaries into W ranges (shard.c), each rank uploads the
 * tensors of its range, and after the vote each range is broadcast from
 * its rank: with NCCL on cuda, over the group's connections on host. */
#include "group_load.h"

#include "admission.h"
#include "device.h"
#include "engine.h"
#include "nccl_lib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VOTE_COMPONENT 128
#define VOTE_MESSAGE 700
#define VOTE_FIXED (4 + 4 + 8 + 8 + 8 + VOTE_COMPONENT + VOTE_MESSAGE)
#define STOPPED_BY_PEER 1u

typedef struct vote {
  int32_t status;
  uint32_t flags;
  uint64_t value, need, free_bytes;
  char component[VOTE_COMPONENT];
  char message[VOTE_MESSAGE];
  const char *summary; /* plan votes: points into the exchange's result */
  uint64_t summary_len;
} vote;

static void put(unsigned char **p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) (*p)[i] = (unsigned char)(v >> (8 * i));
  *p += bytes;
}
static uint64_t get(const unsigned char **p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = v << 8 | (*p)[i];
  *p += bytes;
  return v;
}

/* This rank's vote: status (its detail from this thread's last error). */
static vote my_vote(hoist__group_load *gl, int status, uint64_t value, const char *component) {
  vote v = {.status = status, .value = value};
  if (status != HOIST_OK) snprintf(v.message, sizeof v.message, "%s", hoist__thread_last_error());
  const int origin = hoist__group_stop_origin(gl->g);
  if (status == HOIST_CANCELLED && origin >= 0 && (uint32_t)origin != gl->rank)
    v.flags |= STOPPED_BY_PEER | (uint32_t)origin << 8;
  if (component != NULL) snprintf(v.component, sizeof v.component, "%s", component);
  return v;
}

/* Exchanges mine (and summary) with every rank; votes[r] decoded, their
 * summaries pointing into *keep (the caller frees it).  An exchange that
 * fails is the group's failure, which every rank sees: agreed. */
static int exchange(hoist__group_load *gl, const vote *mine, const char *summary, vote *votes,
                    unsigned char **keep) {
  const uint64_t slen = summary != NULL ? strlen(summary) : 0;
  unsigned char *buf = malloc(VOTE_FIXED + slen), *p = buf;
  if (buf == NULL) return hoist__fail(NULL, HOIST_NO_MEMORY, "out of memory for a vote");
  put(&p, (uint32_t)mine->status, 4);
  put(&p, mine->flags, 4);
  put(&p, mine->value, 8);
  put(&p, mine->need, 8);
  put(&p, mine->free_bytes, 8);
  memcpy(p, mine->component, VOTE_COMPONENT);
  memcpy(p + VOTE_COMPONENT, mine->message, VOTE_MESSAGE);
  if (slen > 0) memcpy(p + VOTE_COMPONENT + VOTE_MESSAGE, summary, slen);
  uint64_t *offs = NULL, *lens = NULL;
  int rc = hoist__group_allgather(gl->g, buf, VOTE_FIXED + slen, keep, &offs, &lens);
  free(buf);
  if (rc != HOIST_OK) {
    gl->agreed = 1;
    return rc;
  }
  for (uint32_t r = 0; r < gl->world && rc == HOIST_OK; r++) {
    if (lens[r] < VOTE_FIXED) {
      rc = hoist__fail(NULL, HOIST_PROTOCOL, "group: rank %u sent a short vote", r);
      break;
    }
    const unsigned char *q = *keep + offs[r];
    vote *v = &votes[r];
    v->status = (int32_t)(uint32_t)get(&q, 4);
    v->flags = (uint32_t)get(&q, 4);
    v->value = get(&q, 8);
    v->need = get(&q, 8);
    v->free_bytes = get(&q, 8);
    memcpy(v->component, q, VOTE_COMPONENT);
    memcpy(v->message, q + VOTE_COMPONENT, VOTE_MESSAGE);
    v->component[VOTE_COMPONENT - 1] = v->message[VOTE_MESSAGE - 1] = '\0';
    v->summary = (const char *)q + VOTE_COMPONENT + VOTE_MESSAGE;
    v->summary_len = lens[r] - VOTE_FIXED;
  }
  free(offs);
  free(lens);
  return rc;
}

/* The voted failure, when a rank failed: the first that failed on its own
 * (else the first), recorded for this rank and in failure. */
static int resolve(hoist_runtime *rt, hoist__group_load *gl, const vote *votes,
                   hoist_load_failure *failure) {
  int pick = -1;
  for (uint32_t r = 0; r < gl->world && pick < 0; r++)
    if (votes[r].status != HOIST_OK && !(votes[r].flags & STOPPED_BY_PEER)) pick = (int)r;
  for (uint32_t r = 0; r < gl->world && pick < 0; r++)
    if (votes[r].status != HOIST_OK) pick = (int)r;
  if (pick < 0) return HOIST_OK;
  const vote *v = &votes[pick];
  gl->agreed = 1;
  if (v->component[0] != '\0')
    hoist__admission_failure(failure, v->component, v->need, v->free_bytes);
  /* Every failure came from a stop: the rank that stopped the load (its
   * user cancelled after its own step had succeeded) is named. */
  if (v->flags & STOPPED_BY_PEER)
    return hoist__fail(rt, v->status, "rank %u cancelled the load (rank %d: %s)", v->flags >> 8,
                       pick, v->message);
  if ((uint32_t)pick == gl->rank) return hoist__fail(rt, v->status, "%s", v->message);
  return hoist__fail(rt, v->status, "rank %d: %s", pick, v->message);
}

static int vote_status(hoist_runtime *rt, hoist__group_load *gl, int status) {
  vote mine = my_vote(gl, status, 0, NULL), *votes = calloc(gl->world, sizeof *votes);
  unsigned char *keep = NULL;
  if (votes == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory for a vote");
  int rc = exchange(gl, &mine, NULL, votes, &keep);
  if (rc == HOIST_OK) rc = resolve(rt, gl, votes, NULL);
  free(keep);
  free(votes);
  return rc;
}

/* ---- Start, shards */

int hoist__group_load_start(hoist_runtime *rt, const hoist_load_options *o,
                            hoist__group_load *gl, const volatile int **cancel) {
  *gl = (hoist__group_load){.g = o->group, .rank = 0, .world = 1};
  *cancel = o->cancel;
  if (gl->g != NULL) {
    gl->rank = (uint32_t)hoist_group_rank(gl->g);
    gl->world = (uint32_t)hoist_group_world_size(gl->g);
    int rc = hoist__group_load_begin(gl->g, o->cancel);
    if (rc != HOIST_OK) {
      gl->agreed = 1; /* the group failed before: nobody waits */
      return rc;
    }
    *cancel = hoist__group_stop_flag(gl->g);
  }
  return hoist__shard_plan_parse(rt, o->shard, gl->rank, gl->world, &gl->plan);
}

int hoist__group_load_shards(hoist_runtime *rt, hoist__group_load *gl, loaded_component *c,
                             int fsdp) {
  size_t n = 0;
  for (size_t f = 0; f < c->nfiles; f++) n += hoist_file_tensor_count(c->files[f]);
  return hoist__shard_table_create(rt, c->info, fsdp, &gl->plan, n, &c->shards);
}

/* ---- The plan vote */

typedef struct text {
  char *s;
  size_t len, cap;
  int oom;
} text;

static void add(text *t, const char *fmt, ...) HOIST_PRINTF(2, 3);
static void add(text *t, const char *fmt, ...) {
  for (int tries = 0; tries < 2 && !t->oom; tries++) {
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(t->s != NULL ? t->s + t->len : NULL, t->s != NULL ? t->cap - t->len : 0,
                            fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->oom = 1;
      return;
    }
    if (t->s != NULL && t->len + (size_t)n < t->cap) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = t->cap > 0 ? t->cap : 4096;
    while (cap <= t->len + (size_t)n) cap *= 2;
    char *grown = realloc(t->s, cap);
    if (grown == NULL) {
      t->oom = 1;
      return;
    }
    t->s = grown;
    t->cap = cap;
  }
}

/* A checksum of a component's files as hoist reads them: every tensor's
 * name, dtype, shape and offsets, and each file's data size. */
static uint64_t files_checksum(const loaded_component *c, int *oom) {
  text t = {0};
  for (size_t f = 0; f < c->nfiles; f++) {
    add(&t, "file %llu\n", (unsigned long long)hoist_file_data_bytes(c->files[f]));
    for (size_t i = 0; i < hoist_file_tensor_count(c->files[f]); i++) {
      const hoist_tensor_info *x = hoist_file_tensor(c->files[f], i);
      add(&t, "%s %d %llu %llu [", x->name, (int)x->dtype, (unsigned long long)x->begin,
          (unsigned long long)x->end);
      for (uint32_t k = 0; k < x->ndim; k++) add(&t, " %llu", (unsigned long long)x->shape[k]);
      add(&t, "]\n");
    }
  }
  const uint64_t sum = t.s != NULL ? hoist__upload_chunk_hash(t.s, t.len) : 0;
  *oom |= t.oom;
  free(t.s);
  return sum;
}

/* This rank's plan, one item a line. */
static char *plan_summary(const hoist__group_load *gl, const hoist_load_options *o,
                          const loaded_component *cs, size_t n, const hoist_dtype *target) {
  text t = {0};
  add(&t, "world size %u\n", gl->world);
  add(&t, "options: verify %d, on_oom %d, shard '%s'\n", o->verify != 0, (int)o->on_oom,
      o->shard != NULL ? o->shard : "");
  add(&t, "load order:");
  for (size_t i = 0; i < n; i++) add(&t, " %s", cs[i].info->name);
  add(&t, "\n");
  for (size_t i = 0; i < n; i++) {
    const loaded_component *c = &cs[i];
    const char *dt = target[i] == HOIST_DTYPE_KEEP ? "keep" : hoist_dtype_name(target[i]);
    int oom = 0;
    const uint64_t sum = files_checksum(c, &oom);
    t.oom |= oom;
    add(&t, "component %s: %s, dtype %s, %zu files, %zu tensors, tensor tables %#018llx\n",
        c->info->name, hoist_residency_name(c->pub.residency), dt, c->nfiles, c->ntensors,
        (unsigned long long)sum);
  }
  if (t.oom) {
    free(t.s);
    return NULL;
  }
  return t.s != NULL ? t.s : calloc(1, 1);
}

/* Line k-th of s (len bytes): its start in *line, its length returned. */
static size_t line_at(const char *s, uint64_t len, size_t k, const char **line) {
  const char *p = s, *end = s + len;
  for (; k > 0 && p < end; k--) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    p = nl != NULL ? nl + 1 : end;
  }
  const char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
  *line = p;
  return (size_t)((nl != NULL ? nl : end) - p);
}

/* HOIST_GROUP_MISMATCH naming the first line where a rank's summary
 * differs from rank 0's. */
static int compare_plans(hoist_runtime *rt, hoist__group_load *gl, const vote *votes) {
  for (uint32_t r = 1; r < gl->world; r++) {
    if (votes[r].summary_len == votes[0].summary_len &&
        memcmp(votes[r].summary, votes[0].summary, (size_t)votes[0].summary_len) == 0)
      continue;
    for (size_t k = 0;; k++) {
      const char *a = NULL, *b = NULL;
      const size_t la = line_at(votes[0].summary, votes[0].summary_len, k, &a);
      const size_t lb = line_at(votes[r].summary, votes[r].summary_len, k, &b);
      if (la == lb && memcmp(a, b, la) == 0 && la > 0) continue;
      gl->agreed = 1;
      return hoist__fail(rt, HOIST_GROUP_MISMATCH,
                         "group: the ranks disagree on the load: rank 0 has '%.*s', rank %u has "
                         "'%.*s'",
                         (int)(la > 300 ? 300 : la), a, r, (int)(lb > 300 ? 300 : lb), b);
    }
  }
  return HOIST_OK;
}

/* Whether the load will broadcast on a CUDA device: then NCCL must load
 * (a rank without it fails the plan vote, so no rank waits for it). */
static int need_nccl(hoist_runtime *rt, const hoist__group_load *gl, const loaded_component *cs,
                     size_t n) {
  if (gl->world < 2 || strcmp(rt->dev->kind, "cuda") != 0) return HOIST_OK;
  for (size_t i = 0; i < n; i++)
    if (cs[i].shards == NULL && cs[i].ntensors > 0 && cs[i].pub.residency == HOIST_RESIDENT)
      return hoist__nccl_load(NULL, NULL);
  return HOIST_OK;
}

int hoist__group_load_plan(hoist_runtime *rt, hoist__group_load *gl, int status,
                           const hoist_load_options *o, const loaded_component *cs, size_t n,
                           const hoist_dtype *target) {
  if (status == HOIST_OK) status = hoist__shard_plan_check(rt, &gl->plan);
  for (size_t i = 0; i < n && status == HOIST_OK && o->manifest != NULL; i++)
    if (cs[i].shards != NULL && cs[i].shards->nparts > 0)
      status = hoist__fail(rt, HOIST_UNSUPPORTED,
                           "%s: a manifest checks whole tensors, and this rank loads parts of "
                           "them (`fsdp`, `shard`)",
                           cs[i].info->name);
  if (gl->g == NULL) return status;
  if (status == HOIST_OK) status = need_nccl(rt, gl, cs, n);
  char *summary = status == HOIST_OK ? plan_summary(gl, o, cs, n, target) : NULL;
  if (status == HOIST_OK && summary == NULL)
    status = hoist__fail(rt, HOIST_NO_MEMORY, "out of memory describing the plan");
  vote mine = my_vote(gl, status, 0, NULL), *votes = calloc(gl->world, sizeof *votes);
  unsigned char *keep = NULL;
  int rc = votes != NULL ? exchange(gl, &mine, summary, votes, &keep)
                         : hoist__fail(rt, HOIST_NO_MEMORY, "out of memory for a vote");
  free(summary);
  if (rc == HOIST_OK) rc = resolve(rt, gl, votes, o->failure);
  if (rc == HOIST_OK) rc = compare_plans(rt, gl, votes);
  free(keep);
  free(votes);
  return rc;
}

/* ---- Admission */

/* Sets c's own range of a replicated component (every rank the same cuts). */
static int own_range(hoist_runtime *rt, const hoist__group_load *gl, loaded_component *c) {
  uint64_t *offsets = malloc((c->ntensors > 0 ? c->ntensors : 1) * sizeof *offsets);
  if (offsets == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  for (size_t i = 0; i < c->ntensors; i++) offsets[i] = c->tensors[i].off;
  uint64_t begin = 0, end = 0;
  hoist__shard_split_span(offsets, c->ntensors, c->span, gl->world, gl->rank, &begin, &end);
  free(offsets);
  /* own_end 0 means "all of it": an empty range owns nothing. */
  c->own_begin = begin < end ? begin : UINT64_MAX;
  c->own_end = begin < end ? end : UINT64_MAX;
  return HOIST_OK;
}

int hoist__group_load_admit(hoist_runtime *rt, hoist__group_load *gl, int status,
                            loaded_component *c, bool *on_device, bool must_fit, uint64_t need,
                            uint64_t free_bytes, hoist_load_failure *failure) {
  c->own_begin = c->own_end = 0;
  if (gl->g == NULL) return status;
  vote mine = my_vote(gl, status, *on_device, c->info->name), *votes;
  mine.need = need;
  mine.free_bytes = free_bytes;
  unsigned char *keep = NULL;
  if ((votes = calloc(gl->world, sizeof *votes)) == NULL)
    return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory for a vote");
  int rc = exchange(gl, &mine, NULL, votes, &keep);
  if (rc == HOIST_OK) rc = resolve(rt, gl, votes, failure);
  int refused = -1;
  for (uint32_t r = 0; r < gl->world && rc == HOIST_OK && refused < 0; r++)
    if (votes[r].value == 0) refused = (int)r;
  if (rc == HOIST_OK && refused >= 0 && must_fit) {
    const vote *v = &votes[refused];
    gl->agreed = 1;
    hoist__admission_failure(failure, c->info->name, v->need, v->free_bytes);
    rc = hoist__fail(rt, HOIST_ADMISSION,
                     "rank %d refused '%s': it needs %llu bytes with its headroom on its device "
                     "but %llu are free; no rank loads it",
                     refused, c->info->name, (unsigned long long)v->need,
                     (unsigned long long)v->free_bytes);
  }
  if (rc == HOIST_OK) *on_device = refused < 0;
  if (rc == HOIST_OK && *on_device && gl->world > 1 && c->shards == NULL && c->ntensors > 0)
    rc = own_range(rt, gl, c);
  free(keep);
  free(votes);
  return rc;
}

/* ---- After the upload: the vote and the broadcasts */

/* The offsets where any rank's arenas of c begin past 0 (sorted, unique,
 * at most world x HOIST_MAX_ARENAS), so every broadcast piece lies in one
 * arena on every rank. */
static int arena_cuts(hoist__group_load *gl, const loaded_component *c, uint64_t *cuts,
                      size_t *ncuts) {
  unsigned char mine[8 * HOIST_MAX_ARENAS] = {0}, *p = mine;
  for (int k = 0; k < HOIST_MAX_ARENAS; k++) put(&p, k < c->arenas.n ? c->arenas.begin[k] : 0, 8);
  unsigned char *all = NULL;
  uint64_t *offs = NULL, *lens = NULL;
  int rc = hoist__group_allgather(gl->g, mine, sizeof mine, &all, &offs, &lens);
  if (rc != HOIST_OK) {
    gl->agreed = 1;
    return rc;
  }
  *ncuts = 0;
  for (uint32_t r = 0; r < gl->world; r++) {
    const unsigned char *q = all + offs[r];
    for (int k = 0; k < HOIST_MAX_ARENAS && lens[r] == sizeof mine; k++) {
      const uint64_t at = get(&q, 8);
      size_t j = 0;
      while (j < *ncuts && cuts[j] < at) j++;
      if (at == 0 || (j < *ncuts && cuts[j] == at)) continue;
      memmove(cuts + j + 1, cuts + j, (*ncuts - j) * sizeof *cuts);
      cuts[j] = at;
      (*ncuts)++;
    }
  }
  free(all);
  free(offs);
  free(lens);
  return HOIST_OK;
}

/* The address of span offset off in c's arenas. */
static uint64_t span_addr(const loaded_component *c, uint64_t off) {
  int k = c->arenas.n - 1;
  while (k > 0 && off < c->arenas.begin[k]) k--;
  return c->arenas.addr[k] + (off - c->arenas.begin[k]);
}

/* Every rank's range of c cut at the arena cuts: the broadcasts. */
static int make_pieces(hoist_runtime *rt, hoist__group_load *gl, const loaded_component *c,
                       hoist__nccl_piece **out, size_t *n) {
  const size_t most = (size_t)gl->world * HOIST_MAX_ARENAS;
  uint64_t *cuts = malloc(most * sizeof *cuts);
  uint64_t *offsets = malloc((c->ntensors > 0 ? c->ntensors : 1) * sizeof *offsets);
  hoist__nccl_piece *pieces = malloc((gl->world + most + 1) * sizeof *pieces);
  size_t ncuts = 0;
  int rc = cuts != NULL && offsets != NULL && pieces != NULL
               ? arena_cuts(gl, c, cuts, &ncuts)
               : hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  *n = 0;
  for (size_t i = 0; i < c->ntensors && rc == HOIST_OK; i++) offsets[i] = c->tensors[i].off;
  for (uint32_t q = 0; q < gl->world && rc == HOIST_OK; q++) {
    uint64_t b = 0, e = 0;
    hoist__shard_split_span(offsets, c->ntensors, c->span, gl->world, q, &b, &e);
    for (size_t j = 0; j < ncuts && b < e; j++)
      if (cuts[j] > b && cuts[j] < e) {
        pieces[(*n)++] = (hoist__nccl_piece){span_addr(c, b), cuts[j] - b, (int)q};
        b = cuts[j];
      }
    if (b < e) pieces[(*n)++] = (hoist__nccl_piece){span_addr(c, b), e - b, (int)q};
  }
  free(cuts);
  free(offsets);
  if (rc != HOIST_OK) {
    free(pieces);
    return rc;
  }
  *out = pieces;
  return HOIST_OK;
}

/* Broadcasts every piece from its rank: NCCL on cuda, the group's
 * connections on host (device addresses are host addresses there). */
static int broadcast(hoist_runtime *rt, hoist__group_load *gl, const hoist__nccl_piece *pieces,
                     size_t n) {
  hoist__device *d = rt->dev;
  int rc = HOIST_OK;
  if (strcmp(d->kind, "cuda") != 0) {
    for (size_t i = 0; i < n && rc == HOIST_OK; i++)
      rc = hoist__group_bcast(gl->g, pieces[i].root, (void *)(uintptr_t)pieces[i].addr,
                              pieces[i].bytes);
    if (rc != HOIST_OK) gl->agreed = 1;
    return rc;
  }
  struct hoist__nccl *comm = NULL;
  void *stream = NULL;
  rc = hoist__group_nccl(gl->g, rt, d->ordinal, &comm);
  if (rc == HOIST_OK) rc = d->ops->stream_create(d, &stream);
  if (rc == HOIST_OK)
    rc = hoist__nccl_broadcast_wait(comm, pieces, n, stream, hoist__group_timeout(gl->g),
                                    hoist__group_stop_flag(gl->g));
  if (stream != NULL) d->ops->stream_destroy(d, stream);
  if (rc != HOIST_OK) { /* the others must not wait in NCCL for this rank */
    hoist__group_fail(gl->g, rc, "rank %u: %s", gl->rank, hoist__thread_last_error());
    gl->agreed = 1;
  }
  return rc;
}

int hoist__group_load_uploaded(hoist_runtime *rt, hoist__group_load *gl, int status,
                               loaded_component *c) {
  if (gl->g == NULL) return status;
  if (status != HOIST_OK && !hoist__group_stopped_by_peer(gl->g)) hoist__group_stop(gl->g);
  int rc = vote_status(rt, gl, status);
  if (rc != HOIST_OK || c->own_end == 0) return rc;
  hoist__nccl_piece *pieces = NULL;
  size_t n = 0;
  rc = make_pieces(rt, gl, c, &pieces, &n);
  if (rc == HOIST_OK) rc = broadcast(rt, gl, pieces, n);
  free(pieces);
  if (rc == HOIST_OK)
    hoist__log(rt, HOIST_LOG_DEBUG, "%s: read %llu of %llu span bytes, the rest from %u ranks",
               c->info->name,
               (unsigned long long)(c->own_end != UINT64_MAX ? c->own_end - c->own_begin : 0),
               (unsigned long long)c->span, gl->world - 1);
  return rc;
}

int hoist__group_load_finish(hoist_runtime *rt, hoist__group_load *gl, int status) {
  hoist__shard_plan_free(&gl->plan);
  if (gl->g == NULL) return status;
  hoist__group_load_end(gl->g);
  if (status == HOIST_OK || gl->agreed) return status;
  if (hoist__group_stopped_by_peer(gl->g)) {
    /* Another rank stopped this one; its reason is on its way. */
    const int why = hoist__group_wait_failure(gl->g, hoist__group_timeout(gl->g));
    if (why != HOIST_OK) return why;
  }
  hoist__group_fail(gl->g, status, "rank %u: %s", gl->rank, hoist__thread_last_error());
  (void)rt;
  return status;
}
