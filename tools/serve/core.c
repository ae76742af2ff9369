/* core.c — the state of `hoist serve`: loads and reloads on the thread
 * pool with the same engine, admission and options as `hoist load`,
 * generations and the references clients hold on them, the prepare,
 * release, verify and free jobs, the snapshot the HTTP side renders, and
 * the shutdown that drains attached clients (serve.h has the threading
 * rules). */
#include "serve.h"


#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct job {
  uv_work_t work;
  serve *sv;
  job_kind kind;
  lane *lane;
  gen *g;                 /* PREPARE, RELEASE, VERIFY, FREE: its generation */
  size_t comp;            /* PREPARE, RELEASE */
  int reload;             /* LOAD: not the first */
  waiter *waiters;
  /* Results, written by the work callback. */
  int status;
  char message[HOIST_ERROR_MAX];
  hoist_load_failure failure;
  gen *result;            /* LOAD */
  shared_arenas arenas;   /* PREPARE */
  uint64_t tensors, bytes;
  double seconds;
  job *next;
};

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void serve_event(serve *sv, const char *event, const char *fmt, ...) {
  char line[1600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (sv->o->load.json) {
    /* fmt gives the JSON members after "event". */
    printf("{\"event\":\"%s\"%s%s}\n", event, line[0] != '\0' ? "," : "", line);
    fflush(stdout);
  }
}

/* ------------------------------------------------------------------------ */
/* Loading (thread pool) */

/* Progress from the upload engine (serialized by it): updates the record
 * and, with --rate, sleeps until the bytes so far are due, which holds the
 * readers back. */
static void on_progress(void *user, const char *component, uint64_t done, uint64_t total) {
  serve *sv = user;
  double now = now_seconds(), due = 0;
  uv_mutex_lock(&sv->progress_lock);
  load_progress *pr = &sv->prog;
  for (size_t i = 0; i < pr->n; i++) {
    struct prog_comp *c = &pr->comps[i];
    if (strcmp(c->name, component) != 0) continue;
    if (c->t0 == 0) c->t0 = now;
    c->t1 = now;
    if (done >= c->done) pr->done += done - c->done;
    c->done = done;
    c->total = total;
  }
  if (sv->o->rate > 0) due = pr->t0 + (double)pr->done / (double)sv->o->rate;
  uv_mutex_unlock(&sv->progress_lock);
  if (due > now) {
    double wait = due - now;
    struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
    nanosleep(&ts, NULL);
  }
  uv_async_send(&sv->wake);
}

/* Publishes the components about to load (load order, inferred sizes). */
static void progress_begin(serve *sv, const hoist_pipeline *p) {
  size_t n = hoist_pipeline_component_count(p);
  struct prog_comp *comps = calloc(n > 0 ? n : 1, sizeof *comps);
  uint64_t total = 0;
  for (size_t i = 0; comps != NULL && i < n; i++) {
    const hoist_component_info *c = hoist_pipeline_ordered(p, i);
    snprintf(comps[i].name, sizeof comps[i].name, "%s", c->name);
    comps[i].total = c->has_size ? c->inferred_bytes : 0;
    total += comps[i].total;
  }
  uv_mutex_lock(&sv->progress_lock);
  free(sv->prog.comps);
  sv->prog.comps = comps;
  sv->prog.n = comps != NULL ? n : 0;
  sv->prog.done = 0;
  sv->prog.total = total;
  sv->prog.t0 = now_seconds();
  uv_mutex_unlock(&sv->progress_lock);
}

/* Exports every arena of component i of l into a. */
static int export_arenas(hoist_runtime *rt, const hoist_loaded *l, size_t i, shared_arenas *a) {
  memset(a, 0, sizeof *a);
  a->n = hoist__loaded_arena_count(l, i);
  for (size_t k = 0; k < a->n; k++) {
    uint64_t addr = 0, begin = 0;
    hoist__loaded_arena(l, i, k, &addr, &a->bytes[k], &begin);
    int rc = hoist__loaded_arena_export(l, i, k, &a->fds[k], a->handles[k]);
    if (rc != HOIST_OK) return rc;
  }
  return HOIST_OK;
}

static void gen_free_memory(gen *g) {
  hoist__wbuf_free(&g->table);
  free(g->comps);
  free(g->fds);
  free(g->fingerprint);
  free(g);
}

/* Builds what clients get of a new load: exported arenas, the ATTACHED
 * message (its generation number is patched in on the loop) and the
 * fingerprint that verify compares with. */
static int gen_build(hoist_runtime *rt, gen *g) {
  const hoist_loaded *l = g->l;
  g->ncomps = hoist_loaded_component_count(l);
  g->comps = calloc(g->ncomps > 0 ? g->ncomps : 1, sizeof *g->comps);
  g->fds = calloc(g->ncomps * HOIST_WIRE_MAX_ARENAS + 1, sizeof *g->fds);
  if (g->comps == NULL || g->fds == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory");
  hoist__wbuf *b = &g->table;
  hoist__wbuf_begin(b, HOIST_WIRE_ATTACHED, 0);
  hoist__wbuf_u32(b, 0);
  hoist__wbuf_str(b, hoist__device_kind(rt));
  hoist__wbuf_str(b, hoist__device_locator(rt));
  hoist__wbuf_u32(b, (uint32_t)g->ncomps);
  for (size_t i = 0; i < g->ncomps; i++) {
    const hoist_loaded_info *info = hoist_loaded_component(l, i);
    shared_arenas a = {0};
    int rc = info->residency == HOIST_OFFLOAD ? HOIST_OK : export_arenas(rt, l, i, &a);
    if (rc != HOIST_OK) return rc;
    hoist__wire_put_component(b, info->name, info->residency, info->bytes,
                             info->residency == HOIST_OFFLOAD ? 0 : info->device_bytes,
                             (uint64_t)(info->seconds * 1e6));
    hoist__wire_put_arenas(b, a.n, a.bytes, (const unsigned char(*)[HOIST_WIRE_HANDLE_BYTES])a.handles);
    for (size_t k = 0; k < a.n; k++)
      if (a.fds[k] >= 0) g->fds[g->nfds++] = a.fds[k];
    hoist__wbuf_u32(b, (uint32_t)info->tensor_count);
    for (size_t j = 0; j < info->tensor_count; j++) {
      uint64_t off = 0;
      const hoist_tensor_info *t = hoist__loaded_placed(l, i, j, &off);
      hoist__wire_put_tensor(b, t, off);
    }
  }
  if (hoist__wbuf_end(b) != 0)
    return hoist__fail(rt, HOIST_OVERFLOW, "the tensor table does not fit one message of %u bytes",
                      HOIST_WIRE_MAX_REPLY);
  if (g->nfds > HOIST_WIRE_MAX_FDS)
    return hoist__fail(rt, HOIST_UNSUPPORTED, "%zu arenas, above the %u one message can pass",
                      g->nfds, HOIST_WIRE_MAX_FDS);
  return hoist__loaded_fingerprint(l, &g->fingerprint, &g->nfingerprint);
}

static void record_failure(job *j, hoist_runtime *rt, int rc) {
  j->status = rc;
  const char *msg = hoist_last_error(rt);
  snprintf(j->message, sizeof j->message, "%s", msg[0] != '\0' ? msg : hoist_strerror(rc));
}

static void work_load(job *j) {
  serve *sv = j->sv;
  serve_options *o = sv->o;
  hoist_runtime *rt = sv->rt;
  if (rt == NULL) { /* the first load opens the device here, not on the loop */
    int rc = hoist_runtime_create(&o->load.cfg, &rt);
    if (rc != HOIST_OK) {
      record_failure(j, NULL, rc);
      return;
    }
    hoist__device_share_by_default(rt); /* workers map the arenas by descriptor */
    uv_mutex_lock(&sv->progress_lock);
    sv->prog.rt = rt;
    uv_mutex_unlock(&sv->progress_lock);
    uv_async_send(&sv->wake);
  }
  double t0 = now_seconds();
  gen *g = calloc(1, sizeof *g);
  if (g == NULL) {
    j->status = HOIST_NO_MEMORY;
    snprintf(j->message, sizeof j->message, "out of memory");
    return;
  }
  hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
  po.variant = o->load.variant;
  po.dtype = o->load.load.dtype;
  hoist_load_options lo = o->load.load;
  lo.progress = on_progress;
  lo.progress_user = sv;
  lo.cancel = &sv->cancel;
  lo.failure = &j->failure;
  int rc = hoist_pipeline_open(rt, o->pipeline, &po, &g->p);
  if (rc == HOIST_OK) {
    progress_begin(sv, g->p);
    rc = hoist_load_pipeline(rt, g->p, &lo, &g->l);
  }
  if (rc == HOIST_OK) rc = gen_build(rt, g);
  if (rc != HOIST_OK) {
    record_failure(j, rt, rc);
    hoist_loaded_close(g->l);
    hoist_pipeline_close(g->p);
    gen_free_memory(g);
    return;
  }
  g->seconds = now_seconds() - t0;
  j->result = g;
  j->status = HOIST_OK;
}

static void work_prepare(job *j) {
  hoist_runtime *rt = hoist__loaded_runtime(j->g->l);
  int moved = 0;
  /* The copy is complete before another process is told where the bytes
   * are. */
  int rc = hoist__loaded_prepare_synced(j->g->l, j->comp, &moved);
  if (rc == HOIST_OK) rc = export_arenas(rt, j->g->l, j->comp, &j->arenas);
  if (rc != HOIST_OK) {
    record_failure(j, rt, rc);
    hoist_release_after_use(j->g->l, j->comp, NULL);
  }
}

static void work_cb(uv_work_t *w) {
  job *j = w->data;
  double t0 = now_seconds();
  switch (j->kind) {
  case JOB_LOAD:
    work_load(j);
    break;
  case JOB_PREPARE:
    work_prepare(j);
    break;
  case JOB_RELEASE:
    j->status = hoist_release_after_use(j->g->l, j->comp, NULL);
    break;
  case JOB_VERIFY:
    j->status = hoist__loaded_check(j->g->l, j->g->fingerprint, j->g->nfingerprint, &j->tensors,
                                   &j->bytes);
    if (j->status != HOIST_OK) record_failure(j, hoist__loaded_runtime(j->g->l), j->status);
    break;
  case JOB_FREE:
    hoist_loaded_close(j->g->l);
    hoist_pipeline_close(j->g->p);
    j->g->l = NULL;
    j->g->p = NULL;
    break;
  }
  j->seconds = now_seconds() - t0;
}

/* ------------------------------------------------------------------------ */
/* Lanes (on the loop) */

static void after_cb(uv_work_t *w, int uv_status);

static void lane_start(serve *sv, lane *ln) {
  if (ln->busy || ln->head == NULL) return;
  ln->busy = 1;
  job *j = ln->head;
  j->work.data = j;
  if (uv_queue_work(sv->loop, &j->work, work_cb, after_cb) != 0) {
    /* The loop refuses work only while closing: run it here. */
    work_cb(&j->work);
    after_cb(&j->work, 0);
  }
}

static job *job_new(serve *sv, lane *ln, job_kind kind, gen *g, size_t comp) {
  job *j = calloc(1, sizeof *j);
  if (j == NULL) return NULL;
  j->sv = sv;
  j->kind = kind;
  j->lane = ln;
  j->g = g;
  j->comp = comp;
  return j;
}

static void job_submit(serve *sv, job *j) {
  lane *ln = j->lane;
  if (ln->tail != NULL) ln->tail->next = j;
  else ln->head = j;
  ln->tail = j;
  lane_start(sv, ln);
}

static int job_wait(job *j, waiter w) {
  if (w.ctl == NULL && w.http == NULL) return 0;
  waiter *x = malloc(sizeof *x);
  if (x == NULL) return -1;
  *x = w;
  x->next = j->waiters;
  j->waiters = x;
  return 0;
}

/* Answers a waiter with an error (either side). */
static void answer_error(waiter *w, int status, const char *msg) {
  if (w->ctl != NULL) control_reply_error(w->ctl, w->id, status, msg);
  if (w->http != NULL) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", hoist_status_name(status));
    cJSON_AddStringToObject(o, "error", msg);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    /* 507: the reload does not fit beside what is loaded; 503: try later. */
    int code = status == HOIST_ADMISSION || status == HOIST_DEVICE_OOM         ? 507
               : status == HOIST_NOT_READY || status == HOIST_CLOSED          ? 503
                                                                              : 500;
    http_answer(w->http, code, body != NULL ? body : "{}");
    cJSON_free(body);
  }
}

void serve_forget_waiters(serve *sv, ctl_conn *c, http_conn *h) {
  lane *lanes[2] = {&sv->load_lane, &sv->ops_lane};
  for (int k = 0; k < 2; k++)
    for (job *j = lanes[k]->head; j != NULL; j = j->next)
      for (waiter *w = j->waiters; w != NULL; w = w->next) {
        if (c != NULL && w->ctl == c) w->ctl = NULL;
        if (h != NULL && w->http == h) w->http = NULL;
      }
}

static void queue_free(serve *sv, gen *g) {
  if (g->freeing || g->current || g->clients > 0) return;
  job *j = job_new(sv, &sv->ops_lane, JOB_FREE, g, 0);
  if (j == NULL) return; /* freed at shutdown instead */
  g->freeing = 1;
  job_submit(sv, j);
}

void serve_gen_unref(serve *sv, gen *g) {
  if (g->clients > 0) g->clients--;
  queue_free(sv, g);
}

static void gen_unlink(serve *sv, gen *g) {
  for (gen **pp = &sv->gens; *pp != NULL; pp = &(*pp)->next)
    if (*pp == g) {
      *pp = g->next;
      break;
    }
  if (sv->current == g) sv->current = NULL;
}

/* A new generation is ready: it becomes current, the old one goes when its
 * clients do, and every waiter hears of it. */
static void load_done(serve *sv, job *j) {
  gen *g = j->result;
  g->id = ++sv->next_gen;
  for (unsigned i = 0; i < 4; i++) g->table.data[HOIST_WIRE_HEADER_BYTES + i] = (unsigned char)(g->id >> (8 * i));
  g->next = sv->gens;
  sv->gens = g;
  gen *old = sv->current;
  sv->current = g;
  g->current = 1;
  sv->reload_failed = 0;
  const hoist_loaded *l = g->l;
  uint64_t bytes = hoist_loaded_total_bytes(l);
  if (old != NULL) {
    old->current = 0;
    sv->reloads_total++;
    control_notify(sv, HOIST_WIRE_GENERATION, g->id, old);
    queue_free(sv, old);
  }
  serve_event(sv, old != NULL ? "reloaded" : "ready",
              "\"generation\":%u,\"bytes\":%llu,\"seconds\":%.6f,\"GBps\":%.3f", g->id,
              (unsigned long long)bytes, g->seconds,
              g->seconds > 0 ? (double)bytes / g->seconds / 1e9 : 0.0);
  if (!sv->o->load.json)
    fprintf(stderr, "hoist serve: generation %u ready: %llu bytes in %.3f s\n", g->id,
            (unsigned long long)bytes, g->seconds);
  control_answer_waiters(sv, HOIST_OK, NULL);
  for (waiter *w = j->waiters; w != NULL; w = w->next) {
    if (w->ctl != NULL)
      control_reply_u32u64u64(w->ctl, HOIST_WIRE_RELOADED, w->id, g->id, bytes,
                              (uint64_t)(g->seconds * 1e6));
    if (w->http != NULL) {
      char body[256];
      snprintf(body, sizeof body,
               "{\"generation\":%u,\"bytes\":%llu,\"seconds\":%.6f,\"GBps\":%.3f}\n", g->id,
               (unsigned long long)bytes, g->seconds,
               g->seconds > 0 ? (double)bytes / g->seconds / 1e9 : 0.0);
      http_answer(w->http, 200, body);
    }
  }
}

static void load_failed(serve *sv, job *j) {
  sv->last_status = j->status;
  snprintf(sv->last_error, sizeof sv->last_error, "%s", j->message);
  char extra[320] = "";
  if (j->failure.component[0] != '\0') {
    cJSON *c = cJSON_CreateString(j->failure.component);
    char *q = c != NULL ? cJSON_PrintUnformatted(c) : NULL;
    snprintf(extra, sizeof extra, ",\"component\":%s,\"need_bytes\":%llu,\"free_bytes\":%llu",
             q != NULL ? q : "\"\"", (unsigned long long)j->failure.need_bytes,
             (unsigned long long)j->failure.free_bytes);
    cJSON_free(q);
    cJSON_Delete(c);
  }
  cJSON *m = cJSON_CreateString(j->message);
  char *mq = m != NULL ? cJSON_PrintUnformatted(m) : NULL;
  serve_event(sv, j->reload ? "reload_failed" : "failed", "\"status\":\"%s\",\"error\":%s%s",
              hoist_status_name(j->status), mq != NULL ? mq : "\"\"", extra);
  cJSON_free(mq);
  cJSON_Delete(m);
  fprintf(stderr, "hoist serve: %s%s\n", j->reload ? "reload: " : "", j->message);
  for (waiter *w = j->waiters; w != NULL; w = w->next) answer_error(w, j->status, j->message);
  if (j->reload) {
    sv->reload_failed = 1;
    return;
  }
  if (sv->stopping && j->status == HOIST_CANCELLED) return;
  sv->load_failed = 1;
  control_answer_waiters(sv, j->status, j->message);
  if (!sv->o->stay_on_failure) {
    sv->exit_code = cli_exit_code(j->status);
    serve_begin_shutdown(sv);
  } else {
    sv->exit_code = cli_exit_code(j->status); /* when it is stopped */
  }
}

static void prepare_done(serve *sv, job *j) {
  gen_comp *gc = &j->g->comps[j->comp];
  if (j->status != HOIST_OK) {
    for (waiter *w = j->waiters; w != NULL; w = w->next) answer_error(w, j->status, j->message);
    return;
  }
  gc->prepared = 1;
  gc->arenas = j->arenas;
  for (waiter *w = j->waiters; w != NULL; w = w->next) {
    if (w->ctl == NULL) continue;
    if (!control_attached_to(w->ctl, j->g)) { /* it detached (and maybe attached anew) */
      control_reply_error(w->ctl, w->id, HOIST_CLOSED, "detached before the prepare finished");
      continue;
    }
    if (!control_holds_prepared(w->ctl, j->g, j->comp)) {
      gc->prep_refs++;
      control_mark_prepared(w->ctl, j->comp);
    }
    control_reply_prepared(w->ctl, w->id, j->g, j->comp);
  }
  if (gc->prep_refs == 0) serve_release_comp(sv, j->g, j->comp); /* its askers left */
}

static void verify_done(serve *sv, job *j) {
  sv->verify_total++;
  if (j->status != HOIST_OK) {
    sv->verify_failed_total++;
    snprintf(sv->verify_last, sizeof sv->verify_last, "generation %u: %.480s", j->g->id,
             j->message);
    for (waiter *w = j->waiters; w != NULL; w = w->next) answer_error(w, j->status, j->message);
    return;
  }
  snprintf(sv->verify_last, sizeof sv->verify_last,
           "generation %u: %llu tensors, %llu bytes unchanged (%.3f s)", j->g->id,
           (unsigned long long)j->tensors, (unsigned long long)j->bytes, j->seconds);
  for (waiter *w = j->waiters; w != NULL; w = w->next) {
    if (w->ctl != NULL)
      control_reply_u32u64u64(w->ctl, HOIST_WIRE_VERIFIED, w->id, j->g->id, j->tensors, j->bytes);
    if (w->http != NULL) {
      char body[256];
      snprintf(body, sizeof body,
               "{\"ok\":true,\"generation\":%u,\"tensors\":%llu,\"bytes\":%llu,\"seconds\":%.6f}\n",
               j->g->id, (unsigned long long)j->tensors, (unsigned long long)j->bytes, j->seconds);
      http_answer(w->http, 200, body);
    }
  }
}

static void after_cb(uv_work_t *w, int uv_status) {
  job *j = w->data;
  serve *sv = j->sv;
  lane *ln = j->lane;
  switch (j->kind) {
  case JOB_LOAD:
    uv_mutex_lock(&sv->progress_lock);
    sv->prog.active = 0;
    if (sv->prog.rt != NULL) sv->rt = sv->prog.rt;
    uv_mutex_unlock(&sv->progress_lock);
    if (j->status == HOIST_OK) load_done(sv, j);
    else load_failed(sv, j);
    break;
  case JOB_PREPARE:
    prepare_done(sv, j);
    break;
  case JOB_RELEASE:
    if (j->g->comps[j->comp].prep_refs == 0) j->g->comps[j->comp].prepared = 0;
    break;
  case JOB_VERIFY:
    verify_done(sv, j);
    break;
  case JOB_FREE:
    gen_unlink(sv, j->g);
    gen_free_memory(j->g);
    break;
  }
  sv->mem_at = 0; /* memory changed: the next status samples it again */
  ln->head = j->next;
  if (ln->head == NULL) ln->tail = NULL;
  ln->busy = 0;
  for (waiter *x = j->waiters; x != NULL;) {
    waiter *next = x->next;
    free(x);
    x = next;
  }
  free(j);
  lane_start(sv, ln);
  serve_maybe_finish(sv);
}

/* ------------------------------------------------------------------------ */
/* Requests (on the loop) */

void serve_start_load(serve *sv) {
  job *j = job_new(sv, &sv->load_lane, JOB_LOAD, NULL, 0);
  if (j == NULL) {
    fprintf(stderr, "hoist serve: out of memory\n");
    sv->exit_code = HOIST_EXIT_FAILURE;
    serve_begin_shutdown(sv);
    return;
  }
  uv_mutex_lock(&sv->progress_lock);
  sv->prog.active = 1;
  sv->prog.reload = 0;
  sv->prog.t0 = now_seconds();
  uv_mutex_unlock(&sv->progress_lock);
  job_submit(sv, j);
}

static void refuse_waiter(waiter *w, int status, const char *msg) { answer_error(w, status, msg); }

/* Queues j (NULL: it could not be made) with w waiting for it. */
static void submit_waited(serve *sv, job *j, waiter w) {
  if (j == NULL || job_wait(j, w) != 0) {
    free(j);
    refuse_waiter(&w, HOIST_NO_MEMORY, "out of memory");
    return;
  }
  job_submit(sv, j);
}

void serve_reload(serve *sv, waiter w) {
  if (sv->stopping) {
    refuse_waiter(&w, HOIST_CLOSED, "the server is shutting down");
    return;
  }
  if (sv->load_lane.busy || sv->load_lane.head != NULL) {
    refuse_waiter(&w, HOIST_NOT_READY, "a load is already running");
    return;
  }
  if (sv->current == NULL) {
    refuse_waiter(&w, HOIST_NOT_READY,
                  "nothing loaded to reload (the first load failed or still runs)");
    return;
  }
  job *j = job_new(sv, &sv->load_lane, JOB_LOAD, NULL, 0);
  if (j != NULL) {
    j->reload = 1;
    uv_mutex_lock(&sv->progress_lock);
    sv->prog.active = 1;
    sv->prog.reload = 1;
    sv->prog.t0 = now_seconds();
    sv->prog.done = 0;
    uv_mutex_unlock(&sv->progress_lock);
  }
  submit_waited(sv, j, w);
}

void serve_verify(serve *sv, waiter w) {
  if (sv->stopping) {
    refuse_waiter(&w, HOIST_CLOSED, "the server is shutting down");
    return;
  }
  if (sv->current == NULL) {
    refuse_waiter(&w, HOIST_NOT_READY, "nothing loaded to verify");
    return;
  }
  submit_waited(sv, job_new(sv, &sv->ops_lane, JOB_VERIFY, sv->current, 0), w);
}

void serve_prepare(serve *sv, gen *g, size_t comp, waiter w) {
  if (sv->stopping) {
    refuse_waiter(&w, HOIST_CLOSED, "the server is shutting down");
    return;
  }
  gen_comp *gc = &g->comps[comp];
  if (gc->prepared && gc->prep_refs > 0) { /* resident for another client: share it */
    gc->prep_refs++;
    control_mark_prepared(w.ctl, comp);
    control_reply_prepared(w.ctl, w.id, g, comp);
    return;
  }
  submit_waited(sv, job_new(sv, &sv->ops_lane, JOB_PREPARE, g, comp), w);
}

void serve_release_comp(serve *sv, gen *g, size_t comp) {
  gen_comp *gc = &g->comps[comp];
  if (gc->prep_refs > 0 || !gc->prepared) return;
  job *j = job_new(sv, &sv->ops_lane, JOB_RELEASE, g, comp);
  if (j != NULL) job_submit(sv, j); /* else it stays resident until the generation goes */
}

/* ------------------------------------------------------------------------ */
/* Snapshot */

static void sample_memory(serve *sv) {
  double now = now_seconds();
  if (sv->rt == NULL || now - sv->mem_at < 0.1) return;
  uint64_t f = 0, t = 0;
  if (hoist__device_mem_info(sv->rt, &f, &t) == HOIST_OK) {
    sv->mem_free = f;
    sv->mem_total = t;
    sv->have_mem = 1;
  }
  sv->mem_at = now;
}

static void snap_current(serve *sv, serve_snapshot *s) {
  gen *g = sv->current;
  const hoist_loaded *l = g->l;
  s->generation = g->id;
  s->load_seconds = hoist_loaded_seconds(l);
  s->bytes_done = s->bytes_total = hoist_loaded_total_bytes(l);
  s->ncomps = g->ncomps;
  s->comps = calloc(g->ncomps > 0 ? g->ncomps : 1, sizeof *s->comps);
  if (s->comps == NULL) {
    s->ncomps = 0;
    return;
  }
  for (size_t i = 0; i < g->ncomps; i++) {
    const hoist_loaded_info *info = hoist_loaded_component(l, i);
    serve_comp_snap *c = &s->comps[i];
    snprintf(c->name, sizeof c->name, "%s", info->name);
    c->residency = (int)info->residency;
    c->bytes_done = c->bytes_total = info->bytes;
    c->seconds = info->seconds;
    c->prepared_by = g->comps[i].prep_refs;
    if (info->tensor_count == 0) c->state = "empty";
    else if (info->residency == HOIST_RESIDENT) c->state = "resident";
    else if (info->residency == HOIST_FSDP) c->state = "fsdp";
    else c->state = g->comps[i].prepared ? "prepared" : "offloaded";
    if (info->residency != HOIST_OFFLOAD) c->device_bytes = info->device_bytes;
    else if (g->comps[i].prepared)
      for (size_t k = 0; k < g->comps[i].arenas.n; k++) c->device_bytes += g->comps[i].arenas.bytes[k];
  }
}

static void snap_progress(const load_progress *pr, serve_snapshot *s) {
  s->bytes_done = pr->done;
  s->bytes_total = pr->total;
  s->load_seconds = pr->active ? now_seconds() - pr->t0 : 0;
  s->comps = calloc(pr->n > 0 ? pr->n : 1, sizeof *s->comps);
  if (s->comps == NULL) return;
  s->ncomps = pr->n;
  for (size_t i = 0; i < pr->n; i++) {
    serve_comp_snap *c = &s->comps[i];
    snprintf(c->name, sizeof c->name, "%s", pr->comps[i].name);
    c->residency = -1;
    c->bytes_done = pr->comps[i].done;
    c->bytes_total = pr->comps[i].total;
    c->seconds = pr->comps[i].t1 - pr->comps[i].t0;
    c->state = c->bytes_done == 0 ? "pending" : c->bytes_done < c->bytes_total ? "loading" : "loaded";
  }
}

void serve_snapshot_take(serve *sv, serve_snapshot *s) {
  memset(s, 0, sizeof *s);
  uv_mutex_lock(&sv->progress_lock);
  if (sv->rt == NULL && sv->prog.rt != NULL) sv->rt = sv->prog.rt;
  load_progress pr = sv->prog;
  if (sv->current == NULL) snap_progress(&pr, s);
  uv_mutex_unlock(&sv->progress_lock);
  s->ready = sv->current != NULL && !sv->stopping;
  s->failed = sv->load_failed;
  s->state = sv->stopping ? "stopping"
             : sv->current == NULL ? (sv->load_failed ? "failed" : "loading")
             : pr.active && pr.reload ? "reloading"
                                      : "ready";
  s->pipeline = sv->o->pipeline;
  s->device = sv->o->load.cfg.device != NULL ? sv->o->load.cfg.device : "host";
  s->device_name = sv->rt != NULL ? hoist__device_name(sv->rt) : "";
  s->uptime_seconds = now_seconds() - sv->t_start;
  s->verify_on_load = sv->o->load.load.verify;
  if (sv->current != NULL) snap_current(sv, s);
  s->error_status = sv->last_status;
  snprintf(s->error, sizeof s->error, "%s", sv->last_error);
  s->reloading = pr.active && pr.reload;
  if (s->reloading) {
    s->reload_done = pr.done;
    s->reload_total = pr.total;
  }
  s->reload_failed = sv->reload_failed;
  sample_memory(sv);
  s->have_mem = sv->have_mem;
  s->mem_free = sv->mem_free;
  s->mem_total = sv->mem_total;
  s->attached = sv->attached;
  s->control_connections = sv->nctl;
  s->http_connections = sv->nhttp;
  size_t ng = 0;
  for (gen *g = sv->gens; g != NULL; g = g->next) ng++;
  s->gens = calloc(ng > 0 ? ng : 1, sizeof *s->gens);
  for (gen *g = sv->gens; g != NULL && s->gens != NULL; g = g->next)
    s->gens[s->ngens++] = (serve_gen_snap){g->id, g->current, g->clients};
  s->attaches_total = sv->attaches_total;
  s->detaches_total = sv->detaches_total;
  s->clients_lost_total = sv->lost_total;
  s->reloads_total = sv->reloads_total;
  s->http_requests_total = sv->http_requests_total;
  s->http_rejected_total = sv->http_rejected_total;
  s->verify_total = sv->verify_total;
  s->verify_failed_total = sv->verify_failed_total;
  snprintf(s->verify_last, sizeof s->verify_last, "%s", sv->verify_last);
}

/* ------------------------------------------------------------------------ */
/* Start and stop */

static void on_wake(uv_async_t *a) {
  /* Progress is read when rendered; the wake only publishes the runtime. */
  serve *sv = a->data;
  uv_mutex_lock(&sv->progress_lock);
  if (sv->rt == NULL && sv->prog.rt != NULL) sv->rt = sv->prog.rt;
  uv_mutex_unlock(&sv->progress_lock);
}

int serve_init(serve *sv, serve_options *o, uv_loop_t *loop) {
  memset(sv, 0, sizeof *sv);
  sv->o = o;
  sv->loop = loop;
  sv->ctl_fd = -1;
  sv->t_start = now_seconds();
  if (uv_mutex_init(&sv->progress_lock) != 0) return -1;
  if (uv_async_init(loop, &sv->wake, on_wake) != 0) return -1;
  sv->wake.data = sv;
  uv_timer_init(loop, &sv->drain_timer);
  sv->drain_timer.data = sv;
  return 0;
}

static void on_drain_timeout(uv_timer_t *t) {
  serve *sv = t->data;
  if (sv->attached > 0)
    fprintf(stderr, "hoist serve: drain time over, %u client(s) still attached; closing them\n",
            sv->attached);
  control_close_all(sv, 0);
  serve_maybe_finish(sv);
}

void serve_begin_shutdown(serve *sv) {
  if (sv->stopping) return;
  sv->stopping = 1;
  /* A running load stops at its next chunk (its threads poll the flag). */
  __atomic_store_n(&sv->cancel, 1, __ATOMIC_RELAXED);
  control_close_listener(sv);
  http_close_listener(sv);
  control_answer_waiters(sv, HOIST_CLOSED, "the server is shutting down");
  control_close_all(sv, 1);
  control_notify(sv, HOIST_WIRE_SHUTDOWN, (uint32_t)sv->o->drain_seconds, NULL);
  serve_event(sv, "stopping", "\"attached\":%u,\"drain_seconds\":%.3f", sv->attached,
              sv->o->drain_seconds);
  if (sv->attached > 0)
    uv_timer_start(&sv->drain_timer, on_drain_timeout, (uint64_t)(sv->o->drain_seconds * 1000), 0);
  serve_maybe_finish(sv);
}

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* Everything is quiet: free what is left and let the loop end. */
void serve_maybe_finish(serve *sv) {
  if (!sv->stopping || sv->finished || sv->attached > 0) return;
  if (sv->load_lane.busy || sv->ops_lane.busy || sv->load_lane.head != NULL ||
      sv->ops_lane.head != NULL)
    return;
  sv->finished = 1;
  while (sv->gens != NULL) {
    gen *g = sv->gens;
    sv->gens = g->next;
    hoist_loaded_close(g->l);
    hoist_pipeline_close(g->p);
    gen_free_memory(g);
  }
  sv->current = NULL;
  control_close_all(sv, 0);
  http_close_all(sv);
  uv_mutex_lock(&sv->progress_lock);
  hoist_runtime *rt = sv->prog.rt;
  sv->prog.rt = NULL;
  free(sv->prog.comps);
  sv->prog.comps = NULL;
  sv->prog.n = 0;
  uv_mutex_unlock(&sv->progress_lock);
  hoist_runtime_close(rt);
  sv->rt = NULL;
  uv_timer_stop(&sv->drain_timer);
  close_handle((uv_handle_t *)&sv->drain_timer);
  close_handle((uv_handle_t *)&sv->wake);
  close_handle((uv_handle_t *)&sv->sig_int);
  close_handle((uv_handle_t *)&sv->sig_term);
  serve_event(sv, "stopped", "\"exit_code\":%d", sv->exit_code);
}
