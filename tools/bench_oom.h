/* bench_oom.h — `hoist bench oom`: the least device memory at which a
 * pipeline loads, per load order × residency policy, measured by full loads
 * on the host backend (a fresh capacity per trial) or on cuda (a ballast
 * allocation leaves exactly the trial capacity free), or simulated from the
 * headers (oom_sim.h).  The measuring trial is exposed here so the tests can
 * set it against the simulation. */
#ifndef HOIST_BENCH_OOM_H
#define HOIST_BENCH_OOM_H

#include "oom_sim.h"

/* One measured trial on a real runtime.  Fill rt, p, s, pol, cancel; the
 * rest is the trial's own state.  Not thread-safe: one measurement at a
 * time per runtime. */
typedef struct oom_measure {
  hoist_runtime *rt;
  const hoist_pipeline *p;
  const oom_setup *s;        /* order, offload marks, transient, co-tenant, headroom */
  const oom_policy *pol;
  const volatile int *cancel; /* may be NULL */
  /* per-trial state (set by oom_measure_trial) */
  uint64_t total_bytes;
  const char *cur;
  uint64_t base, cur_total;
  uint64_t capacity, free0, peak;
  int struck, cotenant_failed;
  uint64_t cotenant_addr;
  unsigned trials;           /* trials run (cuda: the first may grow the context) */
} oom_measure;

/* oom_trial_fn over a real load (user: oom_measure *).  Host: sets the
 * capacity, loads with hoist__load_pipeline_ext in s->order, unloads, and
 * checks that nothing is left allocated (HOIST_DEVICE otherwise).  Cuda:
 * the same under a ballast.  Everything the trial allocated is released on
 * every path.  Returns HOIST_CANCELLED when *cancel is set. */
int oom_measure_trial(void *user, uint64_t capacity, oom_result *r);

/* The CLI entry: argv[0] is "oom". */
int bench_oom(int argc, char **argv);

#endif /* HOIST_BENCH_OOM_H */
