/* oom_sim.h — the model behind `hoist bench oom`: a pipeline reduced to what
 * decides its OOM threshold (per component: tensor bytes and the device
 * bytes of its placement), load orders, residency policies, transient
 * models and a co-tenant, and a simulation of hoist's loader on that model
 * that needs headers only (or a preset table: no file at all).
 *
 * Placement rule (as runtime/load.c places tensors): a component's device
 * bytes are Σ round_up(tensor bytes, 256) rounded up to the backend's
 * allocation granularity (256 on host, 2 MiB on cuda).
 *
 * Loader semantics simulated (runtime/load.c, per trial at capacity C):
 *   - preflight (on-oom=fail only): Σ device bytes of the components to be
 *     placed on the device + headroom must not exceed C;
 *   - components in the order given; one without tensors is skipped; one
 *     the policy offloads takes no device memory;
 *   - admission before each component: device bytes + transient bytes
 *     (rounded to the granularity) + headroom <= C - bytes already placed
 *     (C less the co-tenant's bytes once it has struck);
 *     else on-oom=fail refuses the load (HOIST_ADMISSION) and on-oom=offload
 *     moves that component to host memory;
 *   - the transient bytes are held only during the component's own load.
 *   - the co-tenant strikes at the first progress report whose cumulative
 *     tensor bytes (every component with tensors, offloaded ones included,
 *     in load order) reach FRACTION of the total; a component's admission
 *     sees it when a component before it has reached that point.  FRACTION
 *     0 strikes before the load starts.
 * A trial succeeds when the load succeeds with every component the policy
 * does not offload on the device (an on-oom offload is not success: it is
 * what the threshold guards against).  The threshold is the least capacity,
 * on a grid of `step` bytes (1 MiB), at which a trial succeeds, found by
 * bisection (success is monotone in the capacity).
 *
 * Policy grammar (--policy SPEC):
 *   SPEC  := TERM ( '+' TERM )*
 *   TERM  := 'resident' | 'offload:' LIST | 'on-oom=' ( 'fail' | 'offload' )
 *   LIST  := ITEM ( ',' ITEM )*   ITEM: a component name or a group
 *            (dit, text_encoder, image_encoder, vae, all), as --offload
 * e.g. `resident`, `offload:text_encoder_2`, `on-oom=offload`,
 * `offload:text_encoder_2,vae+on-oom=offload`.  An ITEM matching no
 * component is an error.
 *
 * Everything here is pure computation on caller-owned data; functions are
 * thread-safe on distinct objects.  Errors are written into err (a message)
 * and returned as a hoist status. */
#ifndef HOIST_OOM_SIM_H
#define HOIST_OOM_SIM_H

#include "hoist.h"
#include "presets.h"

#include <stddef.h>
#include <stdint.h>

#define OOM_NAME_MAX 128
#define OOM_LABEL_MAX 256
#define OOM_STEP (1ull << 20)

typedef struct oom_comp {
  char name[OOM_NAME_MAX];
  uint64_t bytes;    /* tensor bytes */
  uint64_t span;     /* Σ round_up(tensor bytes, 256) */
  size_t tensors;
} oom_comp;

typedef struct oom_model {
  char source[1024];  /* pipeline path or preset name */
  size_t n;
  oom_comp *comps;    /* index (model_index) order: slot i */
  size_t *planned;    /* slots in the planned load order */
} oom_model;

/* From an opened pipeline (its headers; no data is read). */
int oom_model_from_pipeline(const hoist_pipeline *p, oom_model *m, char *err, size_t errsz);
/* From a preset table at a scale (0 < scale <= 1), without writing. */
int oom_model_from_preset(const hoist__preset *ps, double scale, oom_model *m, char *err,
                          size_t errsz);
void oom_model_free(oom_model *m);
/* A component's device bytes at an allocation granularity (power of two). */
uint64_t oom_comp_need(const oom_comp *c, uint64_t granularity);

typedef struct oom_order {
  char label[32];     /* "planned", "index", "reverse", "random#3" */
  size_t *slots;      /* n slots in load order (owned) */
} oom_order;

/* Parses "planned,index,reverse,random:K" into orders (random ones are
 * seeded shuffles: shuffle i uses seed + i).  Free with oom_orders_free. */
int oom_orders_parse(const char *spec, const oom_model *m, uint64_t seed, oom_order **out,
                     size_t *count, char *err, size_t errsz);
void oom_orders_free(oom_order *o, size_t count);

typedef struct oom_policy {
  char label[OOM_LABEL_MAX];    /* the SPEC as given */
  char offload[OOM_LABEL_MAX];  /* comma list for hoist_load_options.offload ("" none) */
  int on_oom_offload;
} oom_policy;

int oom_policy_parse(const char *spec, const oom_model *m, oom_policy *out, char *err,
                     size_t errsz);
/* Marks (mark[slot] = 1) the components the policy offloads, exactly as the
 * loader's --offload selection does; an item matching nothing is an error. */
int oom_policy_marks(const oom_policy *pol, const oom_model *m, unsigned char *mark, char *err,
                     size_t errsz);

typedef enum { OOM_TRANSIENT_NONE = 0, OOM_TRANSIENT_CAST, OOM_TRANSIENT_SCRATCH } oom_transient_kind;
typedef struct oom_transient {
  oom_transient_kind kind;
  uint64_t scratch;   /* OOM_TRANSIENT_SCRATCH: bytes per component load */
} oom_transient;
/* "none", "cast", "scratch:BYTES" (BYTES as cli_parse_bytes reads it). */
int oom_transient_parse(const char *spec, oom_transient *out, char *err, size_t errsz);
/* Transient bytes of a component load, before rounding. */
uint64_t oom_transient_bytes(const oom_transient *t, uint64_t tensor_bytes);
/* "none", "cast", "scratch:N". */
void oom_transient_label(const oom_transient *t, char *buf, size_t size);

typedef struct oom_cotenant {
  int enabled;
  uint64_t bytes;
  double fraction;    /* in [0, 1) */
} oom_cotenant;
/* "BYTES@FRACTION". */
int oom_cotenant_parse(const char *spec, oom_cotenant *out, char *err, size_t errsz);
/* Whether the co-tenant has struck once `done` of `total` tensor bytes are
 * loaded (done > 0, or fraction 0). */
int oom_cotenant_struck(const oom_cotenant *c, uint64_t done, uint64_t total);

/* Everything fixed for one order × policy over the trials. */
typedef struct oom_setup {
  const oom_model *m;
  const size_t *order;            /* slots in load order */
  const unsigned char *offload;   /* policy marks, by slot */
  int on_oom_offload;
  oom_transient transient;
  oom_cotenant cotenant;
  uint64_t headroom;
  uint64_t granularity;
} oom_setup;

/* Outcome of one trial. */
typedef struct oom_result {
  int status;                 /* HOIST_OK or the load's failure status */
  int ok;                     /* success as defined above */
  uint64_t capacity;          /* the capacity tried */
  uint64_t peak;              /* most device bytes the load held at once */
  uint64_t device_bytes;      /* device bytes placed at the end (0 on failure) */
  char failed[OOM_NAME_MAX];  /* component refused ("" none) */
  char oom_offloaded[OOM_LABEL_MAX]; /* components on-oom moved to host, comma list */
} oom_result;

/* Σ device bytes of the components the policy keeps on the device. */
uint64_t oom_device_bytes(const oom_setup *s);
/* A capacity at which the load certainly succeeds (when it can at all). */
uint64_t oom_upper_bound(const oom_setup *s);
/* Simulates one trial at capacity. */
void oom_sim_trial(const oom_setup *s, uint64_t capacity, oom_result *r);

/* A trial at a capacity: returns HOIST_OK when the trial ran (r->ok says
 * whether it loaded) or a status that stops the search (cancelled, device
 * error, leak). */
typedef int (*oom_trial_fn)(void *user, uint64_t capacity, oom_result *r);

/* Least capacity on the grid k * step (k >= 0, capacity <= hi) at which
 * trial succeeds.  *found is 0 when it fails even at hi (rounded down to
 * the grid).  at: the result at the threshold; below: the result one step
 * below (status HOIST_OK and ok 0 ... or unset when the threshold is 0). */
int oom_bisect(oom_trial_fn trial, void *user, uint64_t hi, uint64_t step, int *found,
               uint64_t *threshold, oom_result *at, oom_result *below);

/* Simulated trial adapter for oom_bisect (user: const oom_setup *). */
int oom_sim_trial_fn(void *user, uint64_t capacity, oom_result *r);

/* "What fits": the set of components to offload, of least offloaded tensor
 * bytes (then fewest components), for which the simulated threshold in
 * setup s (its offload marks are ignored; on-oom=fail) is at most card,
 * among the sets the loader's --offload list can name exactly (a name that
 * is also a group, like text_encoder, brings its whole group).
 * mark gets the choice (by slot); *threshold its threshold.  Returns 0 when
 * found (offloading everything always fits unless the headroom or the
 * co-tenant alone exceed the card), -1 otherwise. */
int oom_what_fits(const oom_setup *s, uint64_t card, unsigned char *mark, uint64_t *threshold);

#endif /* HOIST_OOM_SIM_H */
