/* load_job.c — work on a C thread while the calling thread waits without
 * the GIL in short slices (hoist_py.h, "Work on a C thread"): Runtime.load
 * and Runtime.load_into.
 *
 * Between slices the caller takes the GIL back to run Python's signal
 * handlers (PyErr_CheckSignals: Ctrl-C raises KeyboardInterrupt there) and
 * to report progress.  On an exception the work is cancelled through the
 * cancel flag in its options, the thread joined, and the caller undoes
 * whatever the work made before the exception propagates, so nothing
 * stays allocated.
 *
 * Progress: the library calls back from its loading thread or a reader,
 * serialized per load; the callback only records numbers under a mutex,
 * and the caller hands them to the Python callable, in load order, on its
 * own thread.  The callable may raise, which cancels the work the same way.
 *
 * A Python tensor filter is called by the library on the work's thread
 * before the load takes the runtime's lock; it takes the GIL there (the
 * caller gives it up between slices).  An exception it raises is kept,
 * the load stops (HOIST_CANCELLED), and the exception is raised instead.
 *
 * The thread blocks every signal, and so do the library's workers it
 * starts, so signals reach the Python thread. */
#include "hoist_py.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Slice of the caller's wait: how soon Ctrl-C and progress are seen. */
#define WAIT_SLICE_NS (20 * 1000 * 1000L)

typedef struct comp_progress {
  char name[128];
  uint64_t done, total;
  uint64_t reported; /* done last given to the Python callable, +1 (0: never) */
} comp_progress;

typedef struct job {
  hp_runtime *owner;
  hp_work_fn work;
  void *arg;
  hp_job_env env;
  volatile int cancel;
  hoist_load_failure failure;
  int rc;
  /* The failure's detail: hoist_last_error() is per thread, so the work's
   * thread copies it out for the caller. */
  char message[1024];

  PyObject *filter;                     /* borrowed; None: no filter */
  PyObject *filter_type, *filter_value, *filter_tb; /* what it raised */

  pthread_mutex_t mu;
  pthread_cond_t cv;
  int finished;
  comp_progress *comps; /* in the order the library first reports them */
  size_t ncomps, cap;
} job;

static void record_progress(void *user, const char *component, uint64_t done, uint64_t total) {
  job *j = user;
  pthread_mutex_lock(&j->mu);
  comp_progress *c = NULL;
  for (size_t k = j->ncomps; k-- > 0;)
    if (strcmp(j->comps[k].name, component) == 0) {
      c = &j->comps[k];
      break;
    }
  if (c == NULL && j->ncomps == j->cap) {
    size_t cap = j->cap > 0 ? 2 * j->cap : 8;
    comp_progress *grown = realloc(j->comps, cap * sizeof *grown);
    if (grown != NULL) {
      j->comps = grown;
      j->cap = cap;
    }
  }
  if (c == NULL && j->ncomps < j->cap) {
    c = &j->comps[j->ncomps++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", component);
  }
  if (c != NULL) { /* out of memory: this report is dropped, the load goes on */
    c->done = done;
    c->total = total;
  }
  pthread_mutex_unlock(&j->mu);
}

/* The library's tensor filter: the Python callable, under the GIL. */
static int call_filter(void *user, const char *component, const char *tensor) {
  job *j = user;
  PyGILState_STATE g = PyGILState_Ensure();
  int verdict = -1;
  PyObject *c = PyUnicode_DecodeUTF8(component, (Py_ssize_t)strlen(component), "replace");
  PyObject *t = PyUnicode_DecodeUTF8(tensor, (Py_ssize_t)strlen(tensor), "replace");
  PyObject *r = c != NULL && t != NULL ? PyObject_CallFunctionObjArgs(j->filter, c, t, NULL) : NULL;
  Py_XDECREF(c);
  Py_XDECREF(t);
  if (r != NULL) {
    int truth = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (truth >= 0) verdict = truth;
  }
  if (verdict < 0) PyErr_Fetch(&j->filter_type, &j->filter_value, &j->filter_tb);
  PyGILState_Release(g);
  return verdict;
}

static void *work_thread(void *arg) {
  job *j = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  j->rc = j->work(&j->env, j->arg);
  if (j->rc != HOIST_OK)
    snprintf(j->message, sizeof j->message, "%s", hoist_last_error(j->env.rt));
  pthread_mutex_lock(&j->mu);
  j->finished = 1;
  pthread_cond_signal(&j->cv);
  pthread_mutex_unlock(&j->mu);
  return NULL;
}

/* Gives the Python callable the progress recorded since the last call;
 * -1 when it raised. */
static int report_progress(job *j, PyObject *progress) {
  if (progress == Py_None) return 0;
  for (size_t k = 0;; k++) {
    pthread_mutex_lock(&j->mu);
    if (k >= j->ncomps) {
      pthread_mutex_unlock(&j->mu);
      return 0;
    }
    comp_progress c = j->comps[k];
    if (c.reported != c.done + 1) j->comps[k].reported = c.done + 1;
    pthread_mutex_unlock(&j->mu);
    if (c.reported == c.done + 1) continue;
    PyObject *name = PyUnicode_DecodeUTF8(c.name, (Py_ssize_t)strlen(c.name), "replace");
    if (name == NULL) return -1;
    PyObject *r = PyObject_CallFunction(progress, "OKK", name, (unsigned long long)c.done,
                                        (unsigned long long)c.total);
    Py_DECREF(name);
    if (r == NULL) return -1;
    Py_DECREF(r);
  }
}

/* Waits one slice for the thread; returns 1 when it has finished. */
static int wait_slice(job *j) {
  int finished;
  Py_BEGIN_ALLOW_THREADS
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_nsec += WAIT_SLICE_NS;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&j->mu);
  if (!j->finished) pthread_cond_timedwait(&j->cv, &j->mu, &until);
  finished = j->finished;
  pthread_mutex_unlock(&j->mu);
  Py_END_ALLOW_THREADS
  return finished;
}

/* Waits for the thread, reporting progress and checking signals; returns
 * -1 with an exception set when either raised (the work is cancelled). */
static int wait_for(job *j, pthread_t thread, PyObject *progress) {
  int failed = 0;
  for (;;) {
    int finished = wait_slice(j);
    if (report_progress(j, progress) < 0 || PyErr_CheckSignals() < 0) {
      failed = 1;
      break;
    }
    if (finished) break;
  }
  if (failed) j->cancel = 1;
  Py_BEGIN_ALLOW_THREADS
  pthread_join(thread, NULL);
  Py_END_ALLOW_THREADS
  /* What the last slice did not report yet (a small load ends in one). */
  if (!failed && j->rc == HOIST_OK && report_progress(j, progress) < 0) failed = 1;
  return failed ? -1 : 0;
}

int hp_job_run(hp_runtime *owner, hp_work_fn work, void *arg, PyObject *progress,
               PyObject *filter) {
  job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    PyErr_NoMemory();
    return -1;
  }
  j->owner = owner;
  j->work = work;
  j->arg = arg;
  j->filter = filter;
  j->env = (hp_job_env){owner->rt, &j->cancel, &j->failure, NULL, NULL, NULL, NULL};
  if (progress != Py_None) {
    j->env.progress = record_progress;
    j->env.progress_user = j;
  }
  if (filter != Py_None) {
    j->env.filter = call_filter;
    j->env.filter_user = j;
  }
  int result = -1;
  /* The work holds the runtime too: closing the Python Runtime meanwhile
   * must not close it under the thread. */
  hp_runtime_ref(owner);
  int mu_ok = pthread_mutex_init(&j->mu, NULL) == 0;
  int cv_ok = mu_ok && pthread_cond_init(&j->cv, NULL) == 0;
  pthread_t thread;
  if (!cv_ok || pthread_create(&thread, NULL, work_thread, j) != 0) {
    PyErr_SetString(PyExc_OSError, "hoist: cannot start the loading thread");
  } else if (wait_for(j, thread, progress) == 0) {
    if (j->filter_type != NULL) /* the filter raised: its exception, not CANCELLED */
      PyErr_Restore(j->filter_type, j->filter_value, j->filter_tb);
    else if (j->rc != HOIST_OK)
      hp_raise(j->rc, j->message, &j->failure);
    else
      result = 0;
  } else {
    /* Interrupted: an exception from the filter loses to this one. */
    Py_XDECREF(j->filter_type);
    Py_XDECREF(j->filter_value);
    Py_XDECREF(j->filter_tb);
  }
  hp_runtime_unref(owner);
  if (cv_ok) pthread_cond_destroy(&j->cv);
  if (mu_ok) pthread_mutex_destroy(&j->mu);
  free(j->comps);
  free(j);
  return result;
}

/* ---- Runtime.load */

typedef struct load_work {
  const char *path;
  const hoist_pipeline_options *po;
  hoist_load_options lo;
  const hoist_group_options *go; /* NULL: a load alone */
  hoist_pipeline *p;
  hoist_loaded *l;
} load_work;

/* With ranks the group lives for the load on the loading thread: the
 * loaded pipeline does not need it afterwards. */
static int open_and_load(const hp_job_env *env, void *arg) {
  load_work *w = arg;
  HP_ENV_OPTIONS(w->lo, env);
  hoist_group *g = NULL;
  int rc = w->go != NULL ? hoist_group_create(w->go, &g) : HOIST_OK;
  w->lo.group = g;
  if (rc == HOIST_OK) rc = hoist_pipeline_open(env->rt, w->path, w->po, &w->p);
  if (rc == HOIST_OK) rc = hoist_load_pipeline(env->rt, w->p, &w->lo, &w->l);
  hoist_group_close(g);
  return rc;
}

PyObject *hp_load_run(hp_runtime *owner, const char *path, const hoist_pipeline_options *po,
                      const hoist_load_options *lo, const hoist_group_options *go,
                      PyObject *progress, PyObject *filter) {
  load_work w = {path, po, *lo, go, NULL, NULL};
  hp_loaded *h = NULL;
  if (hp_job_run(owner, open_and_load, &w, progress, filter) == 0 &&
      (h = hp_loaded_new(owner, w.p, w.l)) == NULL)
    PyErr_NoMemory();
  if (h == NULL) {
    /* A load that finished before it saw the cancel is undone here. */
    hoist_loaded_close(w.l);
    hoist_pipeline_close(w.p);
    return NULL;
  }
  return hp_loaded_wrap(h);
}
