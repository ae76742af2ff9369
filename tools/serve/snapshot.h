/* snapshot.h — what `hoist serve` reports over HTTP, as plain data: the
 * server copies its state into a snapshot on the event loop (taking the
 * loader's mutex for the progress part) and the renderers (render.c) turn
 * it into /readyz, /v1/status and /metrics bodies.  Keeping the renderers
 * on plain data lets the HTTP fuzzer drive them without a server. */
#ifndef HOIST_SERVE_SNAPSHOT_H
#define HOIST_SERVE_SNAPSHOT_H

#include "hoist.h"

#include <stddef.h>
#include <stdint.h>

typedef struct serve_comp_snap {
  char name[128];
  const char *state;       /* pending, loading, resident, offloaded, prepared, fsdp, empty */
  int residency;           /* hoist_residency, or -1 before the load placed it */
  uint64_t bytes_done, bytes_total;
  uint64_t device_bytes;
  double seconds;          /* its load time so far or in all */
  unsigned prepared_by;    /* clients holding an offloaded component prepared */
} serve_comp_snap;

typedef struct serve_gen_snap {
  uint32_t id;
  int current;
  unsigned clients;
} serve_gen_snap;

typedef struct serve_snapshot {
  const char *state;       /* loading, ready, reloading, failed, stopping */
  int ready;               /* a generation is current: attaches succeed */
  int failed;              /* the first load failed: nothing will be ready */
  const char *pipeline;
  const char *device;      /* spec, "cuda:0" */
  const char *device_name; /* "NVIDIA H100 80GB HBM3", "host"; "" before the device opened */
  double uptime_seconds;
  int verify_on_load;
  /* The current generation, or the load in progress when none is. */
  uint32_t generation;
  double load_seconds;
  uint64_t bytes_done, bytes_total;
  size_t ncomps;
  serve_comp_snap *comps;
  /* The first load's failure (failed), or the last reload's (reload_failed). */
  int error_status;
  char error[1024];
  /* A reload in progress: its bytes. */
  int reloading;
  uint64_t reload_done, reload_total;
  int reload_failed;
  /* Device memory now; have_mem 0 before the device opened. */
  int have_mem;
  uint64_t mem_free, mem_total;
  /* Clients. */
  unsigned attached, control_connections, http_connections;
  size_t ngens;
  serve_gen_snap *gens;
  /* Counters since start. */
  uint64_t attaches_total, detaches_total, clients_lost_total, reloads_total;
  uint64_t http_requests_total, http_rejected_total;
  uint64_t verify_total, verify_failed_total;
  char verify_last[512];   /* "" when none ran */
} serve_snapshot;

void serve_snapshot_free(serve_snapshot *s);

/* Response bodies.  Each returns a malloc'd NUL-terminated string (NULL when
 * out of memory) and, for readyz, the HTTP status to send. */
char *render_readyz(const serve_snapshot *s, int *http_status);
char *render_status(const serve_snapshot *s);
char *render_metrics(const serve_snapshot *s);

#endif
