/* load_job.c — Runtime.load: the load runs on a C thread while the calling
 * thread waits without the GIL in short slices.
 *
 * Between slices the caller takes the GIL back to run Python's signal
 * handlers (PyErr_CheckSignals: Ctrl-C raises KeyboardInterrupt there) and
 * to report progress.  On an exception the load is cancelled through
 * hoist_load_options.cancel, the thread joined, and whatever it made is
 * closed before the exception propagates, so nothing stays allocated.
 *
 * Progress: the library calls back from its loading thread or a reader,
 * serialized per load; the callback only records numbers under a mutex,
 * and the caller hands them to the Python callable, in load order, on its
 * own thread.  The callable may raise, which cancels the load the same way.
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

typedef struct load_job {
  hp_runtime *owner;
  const char *path;
  const hoist_pipeline_options *po;
  hoist_load_options lo;
  const hoist_group_options *go; /* NULL: a load alone */
  volatile int cancel;
  hoist_load_failure failure;
  int rc;
  /* The failure's detail: hoist_last_error() is per thread, so the loading
   * thread copies it out for the caller. */
  char message[1024];
  hoist_pipeline *p;
  hoist_loaded *l;

  pthread_mutex_t mu;
  pthread_cond_t cv;
  int finished;
  comp_progress *comps; /* in the order the library first reports them */
  size_t ncomps, cap;
  int progress_oom;
} load_job;

static void record_progress(void *user, const char *component, uint64_t done, uint64_t total) {
  load_job *j = user;
  pthread_mutex_lock(&j->mu);
  comp_progress *c = NULL;
  for (size_t k = j->ncomps; k-- > 0;)
    if (strcmp(j->comps[k].name, component) == 0) {
      c = &j->comps[k];
      break;
    }
  if (c == NULL) {
    if (j->ncomps == j->cap) {
      size_t cap = j->cap > 0 ? 2 * j->cap : 8;
      comp_progress *grown = realloc(j->comps, cap * sizeof *grown);
      if (grown == NULL) {
        j->progress_oom = 1;
        pthread_mutex_unlock(&j->mu);
        return;
      }
      j->comps = grown;
      j->cap = cap;
    }
    c = &j->comps[j->ncomps++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", component);
  }
  c->done = done;
  c->total = total;
  pthread_mutex_unlock(&j->mu);
}

static void *load_thread(void *arg) {
  load_job *j = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  hoist_runtime *rt = j->owner->rt;
  hoist_group *g = NULL;
  /* With ranks the group lives for the load: the loaded pipeline does not
   * need it afterwards. */
  j->rc = j->go != NULL ? hoist_group_create(j->go, &g) : HOIST_OK;
  j->lo.group = g;
  if (j->rc == HOIST_OK) j->rc = hoist_pipeline_open(rt, j->path, j->po, &j->p);
  if (j->rc == HOIST_OK) j->rc = hoist_load_pipeline(rt, j->p, &j->lo, &j->l);
  if (j->rc != HOIST_OK) snprintf(j->message, sizeof j->message, "%s", hoist_last_error(rt));
  hoist_group_close(g);
  pthread_mutex_lock(&j->mu);
  j->finished = 1;
  pthread_cond_signal(&j->cv);
  pthread_mutex_unlock(&j->mu);
  return NULL;
}

/* Gives the Python callable the progress recorded since the last call;
 * -1 when it raised. */
static int report_progress(load_job *j, PyObject *progress) {
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
static int wait_slice(load_job *j) {
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

PyObject *hp_load_run(hp_runtime *owner, const char *path, const hoist_pipeline_options *po,
                      const hoist_load_options *lo, const hoist_group_options *go,
                      PyObject *progress) {
  load_job *j = calloc(1, sizeof *j);
  if (j == NULL) return PyErr_NoMemory();
  j->owner = owner;
  j->path = path;
  j->po = po;
  j->lo = *lo;
  j->go = go;
  j->lo.cancel = &j->cancel;
  j->lo.failure = &j->failure;
  if (progress != Py_None) {
    j->lo.progress = record_progress;
    j->lo.progress_user = j;
  }
  PyObject *result = NULL;
  /* The load holds the runtime too: closing the Python Runtime meanwhile
   * must not close it under the thread. */
  hp_runtime_ref(owner);
  int mu_ok = pthread_mutex_init(&j->mu, NULL) == 0;
  int cv_ok = mu_ok && pthread_cond_init(&j->cv, NULL) == 0;
  pthread_t thread;
  if (!cv_ok || pthread_create(&thread, NULL, load_thread, j) != 0) {
    PyErr_SetString(PyExc_OSError, "hoist: cannot start the loading thread");
    goto out;
  }

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

  if (failed || j->rc != HOIST_OK) {
    if (!failed) hp_raise(j->rc, j->message, &j->failure);
    /* A load that finished before it saw the cancel is undone here. */
    hoist_loaded_close(j->l);
    hoist_pipeline_close(j->p);
  } else {
    hp_loaded *h = hp_loaded_new(owner, j->p, j->l);
    if (h == NULL) {
      hoist_loaded_close(j->l);
      hoist_pipeline_close(j->p);
      PyErr_NoMemory();
    } else {
      result = hp_loaded_wrap(h);
    }
  }
out:
  hp_runtime_unref(owner);
  if (cv_ok) pthread_cond_destroy(&j->cv);
  if (mu_ok) pthread_mutex_destroy(&j->mu);
  free(j->comps);
  free(j);
  return result;
}
