/* render.c — the bodies of hoist serve's read-only endpoints, from a
 * snapshot (snapshot.h): /readyz and /v1/status as JSON (cJSON, which
 * escapes every name), /metrics in the Prometheus text exposition format
 * (version 0.0.4: HELP and TYPE lines, label values with backslash, quote
 * and newline escaped). */
#include "snapshot.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void serve_snapshot_free(serve_snapshot *s) {
  free(s->comps);
  free(s->gens);
  s->comps = NULL;
  s->gens = NULL;
}

static double gbps(uint64_t bytes, double seconds) {
  return seconds > 0 ? (double)bytes / seconds / 1e9 : 0.0;
}

static void add_num(cJSON *o, const char *k, double v) { cJSON_AddNumberToObject(o, k, v); }

static char *print_json(cJSON *root) {
  char *text = root != NULL ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  if (text == NULL) return NULL;
  size_t n = strlen(text);
  char *out = malloc(n + 2); /* a trailing newline for curl users */
  if (out != NULL) {
    memcpy(out, text, n);
    out[n] = '\n';
    out[n + 1] = '\0';
  }
  cJSON_free(text);
  return out;
}

static void add_progress(cJSON *o, const serve_snapshot *s) {
  add_num(o, "bytes_done", (double)s->bytes_done);
  add_num(o, "bytes_total", (double)s->bytes_total);
  add_num(o, "progress", s->bytes_total > 0 ? (double)s->bytes_done / (double)s->bytes_total : 0);
}

char *render_readyz(const serve_snapshot *s, int *http_status) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddBoolToObject(o, "ready", s->ready);
  cJSON_AddStringToObject(o, "state", s->state);
  if (s->ready) {
    *http_status = 200;
    add_num(o, "generation", s->generation);
  } else if (s->failed) {
    *http_status = 500;
    cJSON_AddStringToObject(o, "status", hoist_status_name(s->error_status));
    cJSON_AddStringToObject(o, "error", s->error);
  } else {
    *http_status = 503;
    add_progress(o, s);
  }
  return print_json(o);
}

static cJSON *component_json(const serve_comp_snap *c) {
  cJSON *e = cJSON_CreateObject();
  cJSON_AddStringToObject(e, "name", c->name);
  cJSON_AddStringToObject(e, "state", c->state);
  if (c->residency >= 0) cJSON_AddStringToObject(e, "residency", hoist_residency_name((hoist_residency)c->residency));
  else cJSON_AddNullToObject(e, "residency");
  add_num(e, "bytes_done", (double)c->bytes_done);
  add_num(e, "bytes_total", (double)c->bytes_total);
  add_num(e, "device_bytes", (double)c->device_bytes);
  add_num(e, "seconds", c->seconds);
  add_num(e, "GBps", gbps(c->bytes_done, c->seconds));
  add_num(e, "prepared_by", c->prepared_by);
  return e;
}

char *render_status(const serve_snapshot *s) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "state", s->state);
  cJSON_AddBoolToObject(o, "ready", s->ready);
  cJSON_AddStringToObject(o, "pipeline", s->pipeline);
  cJSON_AddStringToObject(o, "device", s->device);
  cJSON_AddStringToObject(o, "device_name", s->device_name);
  add_num(o, "uptime_seconds", s->uptime_seconds);
  add_num(o, "generation", s->generation);
  cJSON *load = cJSON_AddObjectToObject(o, "load");
  add_progress(load, s);
  add_num(load, "seconds", s->load_seconds);
  add_num(load, "GBps", gbps(s->bytes_done, s->load_seconds));
  cJSON_AddBoolToObject(load, "verified", s->verify_on_load);
  if (s->failed) {
    cJSON_AddStringToObject(load, "status", hoist_status_name(s->error_status));
    cJSON_AddStringToObject(load, "error", s->error);
  }
  cJSON *comps = cJSON_AddArrayToObject(o, "components");
  for (size_t i = 0; i < s->ncomps; i++) cJSON_AddItemToArray(comps, component_json(&s->comps[i]));
  cJSON *mem = cJSON_AddObjectToObject(o, "device_memory");
  if (s->have_mem) {
    add_num(mem, "used", (double)(s->mem_total - s->mem_free));
    add_num(mem, "free", (double)s->mem_free);
    add_num(mem, "total", (double)s->mem_total);
  }
  cJSON *cl = cJSON_AddObjectToObject(o, "clients");
  add_num(cl, "attached", s->attached);
  add_num(cl, "control_connections", s->control_connections);
  add_num(cl, "http_connections", s->http_connections);
  add_num(cl, "attaches_total", (double)s->attaches_total);
  add_num(cl, "detaches_total", (double)s->detaches_total);
  add_num(cl, "lost_total", (double)s->clients_lost_total);
  cJSON *gens = cJSON_AddArrayToObject(o, "generations");
  for (size_t i = 0; i < s->ngens; i++) {
    cJSON *g = cJSON_CreateObject();
    add_num(g, "id", s->gens[i].id);
    cJSON_AddBoolToObject(g, "current", s->gens[i].current);
    add_num(g, "clients", s->gens[i].clients);
    cJSON_AddItemToArray(gens, g);
  }
  cJSON *rl = cJSON_AddObjectToObject(o, "reload");
  cJSON_AddBoolToObject(rl, "running", s->reloading);
  add_num(rl, "bytes_done", (double)s->reload_done);
  add_num(rl, "bytes_total", (double)s->reload_total);
  add_num(rl, "total", (double)s->reloads_total);
  if (s->reload_failed) {
    cJSON_AddStringToObject(rl, "status", hoist_status_name(s->error_status));
    cJSON_AddStringToObject(rl, "error", s->error);
  }
  cJSON *vf = cJSON_AddObjectToObject(o, "verify");
  add_num(vf, "total", (double)s->verify_total);
  add_num(vf, "failed", (double)s->verify_failed_total);
  cJSON_AddStringToObject(vf, "last", s->verify_last);
  return print_json(o);
}

/* ---- Prometheus text */

typedef struct text {
  char *p;
  size_t len, cap;
  int failed;
} text;

static void tprintf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tprintf(text *t, const char *fmt, ...) {
  if (t->failed) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->failed = 1;
      return;
    }
    if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = (t->cap + (size_t)n + 1) * 2;
    char *p = realloc(t->p, cap);
    if (p == NULL) {
      t->failed = 1;
      return;
    }
    t->p = p;
    t->cap = cap;
  }
}

/* A label value with \, " and newline escaped, as the format asks. */
static const char *label(const char *s, char *buf, size_t size) {
  size_t o = 0;
  for (; *s != '\0' && o + 3 < size; s++) {
    if (*s == '\\' || *s == '"') buf[o++] = '\\';
    if (*s == '\n') {
      buf[o++] = '\\';
      buf[o++] = 'n';
      continue;
    }
    buf[o++] = *s;
  }
  buf[o] = '\0';
  return buf;
}

static void metric(text *t, const char *name, const char *type, const char *help) {
  tprintf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

char *render_metrics(const serve_snapshot *s) {
  text t = {malloc(4096), 0, 4096, 0};
  if (t.p == NULL) return NULL;
  t.p[0] = '\0';
  char esc[400];
  metric(&t, "hoist_ready", "gauge", "1 when a loaded generation is served.");
  tprintf(&t, "hoist_ready %d\n", s->ready);
  metric(&t, "hoist_generation", "gauge", "The generation served (1, then +1 per reload).");
  tprintf(&t, "hoist_generation %u\n", s->generation);
  metric(&t, "hoist_load_bytes", "gauge", "Tensor bytes loaded of the current or loading generation.");
  tprintf(&t, "hoist_load_bytes %llu\n", (unsigned long long)s->bytes_done);
  metric(&t, "hoist_load_bytes_total", "gauge", "Tensor bytes of the pipeline.");
  tprintf(&t, "hoist_load_bytes_total %llu\n", (unsigned long long)s->bytes_total);
  metric(&t, "hoist_load_seconds", "gauge", "Wall time of the load so far, or in all.");
  tprintf(&t, "hoist_load_seconds %.6f\n", s->load_seconds);
  metric(&t, "hoist_component_state", "gauge", "1 for each component's current state.");
  for (size_t i = 0; i < s->ncomps; i++)
    tprintf(&t, "hoist_component_state{component=\"%s\",state=\"%s\"} 1\n",
            label(s->comps[i].name, esc, sizeof esc), s->comps[i].state);
  metric(&t, "hoist_component_bytes", "gauge", "Tensor bytes of each component loaded so far.");
  for (size_t i = 0; i < s->ncomps; i++)
    tprintf(&t, "hoist_component_bytes{component=\"%s\"} %llu\n",
            label(s->comps[i].name, esc, sizeof esc), (unsigned long long)s->comps[i].bytes_done);
  metric(&t, "hoist_component_device_bytes", "gauge", "Device memory each component holds.");
  for (size_t i = 0; i < s->ncomps; i++)
    tprintf(&t, "hoist_component_device_bytes{component=\"%s\"} %llu\n",
            label(s->comps[i].name, esc, sizeof esc), (unsigned long long)s->comps[i].device_bytes);
  if (s->have_mem) {
    metric(&t, "hoist_device_memory_bytes", "gauge", "Device memory by kind (used, free, total).");
    tprintf(&t, "hoist_device_memory_bytes{kind=\"used\"} %llu\n",
            (unsigned long long)(s->mem_total - s->mem_free));
    tprintf(&t, "hoist_device_memory_bytes{kind=\"free\"} %llu\n", (unsigned long long)s->mem_free);
    tprintf(&t, "hoist_device_memory_bytes{kind=\"total\"} %llu\n", (unsigned long long)s->mem_total);
  }
  metric(&t, "hoist_clients", "gauge", "Attached clients.");
  tprintf(&t, "hoist_clients %u\n", s->attached);
  metric(&t, "hoist_connections", "gauge", "Open connections by kind.");
  tprintf(&t, "hoist_connections{kind=\"control\"} %u\n", s->control_connections);
  tprintf(&t, "hoist_connections{kind=\"http\"} %u\n", s->http_connections);
  metric(&t, "hoist_generation_clients", "gauge", "Clients holding each live generation.");
  for (size_t i = 0; i < s->ngens; i++)
    tprintf(&t, "hoist_generation_clients{generation=\"%u\"} %u\n", s->gens[i].id, s->gens[i].clients);
  metric(&t, "hoist_attaches_total", "counter", "Successful attaches.");
  tprintf(&t, "hoist_attaches_total %llu\n", (unsigned long long)s->attaches_total);
  metric(&t, "hoist_detaches_total", "counter", "Detaches, asked for or by a closed connection.");
  tprintf(&t, "hoist_detaches_total %llu\n", (unsigned long long)s->detaches_total);
  metric(&t, "hoist_clients_lost_total", "counter", "Attached clients whose connection closed without a detach.");
  tprintf(&t, "hoist_clients_lost_total %llu\n", (unsigned long long)s->clients_lost_total);
  metric(&t, "hoist_reloads_total", "counter", "Reloads that became current.");
  tprintf(&t, "hoist_reloads_total %llu\n", (unsigned long long)s->reloads_total);
  metric(&t, "hoist_verify_total", "counter", "Verifications run, and failed.");
  tprintf(&t, "hoist_verify_total{result=\"ok\"} %llu\n",
          (unsigned long long)(s->verify_total - s->verify_failed_total));
  tprintf(&t, "hoist_verify_total{result=\"failed\"} %llu\n", (unsigned long long)s->verify_failed_total);
  metric(&t, "hoist_http_requests_total", "counter", "HTTP requests answered, and refused (malformed, too large, timed out, over the connection cap).");
  tprintf(&t, "hoist_http_requests_total{result=\"answered\"} %llu\n",
          (unsigned long long)s->http_requests_total);
  tprintf(&t, "hoist_http_requests_total{result=\"refused\"} %llu\n",
          (unsigned long long)s->http_rejected_total);
  if (t.failed) {
    free(t.p);
    return NULL;
  }
  return t.p;
}
