/* hoist_py.h — what the files of the extension module hoist._core share.
 *
 * The module is written against CPython's stable ABI (Py_LIMITED_API
 * 0x03090000, one abi3 build for every CPython from 3.9 on) and the public
 * header hoist.h only.  It has three layers:
 *   - refcounted C cores (core.c) that own the library's handles, so a
 *     DLPack deleter can free a load on any thread without the GIL;
 *   - Python types over them: Runtime (runtime_obj.c) and Loaded
 *     (loaded_obj.c), with the load itself on a C thread (load_job.c) and
 *     DLPack export (dlpack.c);
 *   - errors (errors.c): a library status becomes a hoist.Error subclass
 *     through the one table in hoist/_errors.py. */
#ifndef HOIST_PY_H
#define HOIST_PY_H

#define Py_LIMITED_API 0x03090000
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "hoist.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Cores (core.c): plain C, safe to drop on any thread without the GIL. */

/* A runtime shared by the Python Runtime object, every load made with it and
 * every load in flight: the library requires loads to be closed before their
 * runtime, and references give that order whatever Python frees first. */
typedef struct hp_runtime {
  atomic_size_t refs;
  hoist_runtime *rt;
  /* The library's log lines, kept until the Python side drains them into
   * the "hoist" logger on a thread that holds the GIL: the library logs
   * from its workers and from closes that deleters run. */
  pthread_mutex_t log_lock;
  struct hp_log_line *log;
  size_t nlog, log_dropped;
} hp_runtime;

typedef struct hp_log_line {
  int level;
  char *text;
} hp_log_line;

/* At most this many lines wait for a drain; later ones are counted. */
#define HP_LOG_MAX 256

/* One load: the pipeline it was made from (which must outlive it) and the
 * loaded handle.  One reference belongs to the Python Loaded object until
 * it is closed, one to each DLPack export until its deleter runs; the last
 * one closes the load, so memory under a live export is never freed.  Each
 * export also holds its component in the library (hoist_loaded_hold), so a
 * release of it answers HOIST_BUSY; exports counts them per component for
 * Loaded.components and messages only. */
typedef struct hp_loaded {
  atomic_size_t refs;
  hp_runtime *owner;
  hoist_pipeline *p;
  hoist_loaded *l;
  size_t ncomps;
  atomic_size_t *exports; /* per component, load order */
} hp_loaded;

/* Creates the runtime with cfg (its log callback replaced by the queue). */
int hp_runtime_new(const hoist_config *cfg, hp_runtime **out);
/* Moves the queued log lines out: *lines (free each text, then the array)
 * and their count; *dropped lines did not fit. */
void hp_runtime_take_log(hp_runtime *r, hp_log_line **lines, size_t *n, size_t *dropped);
void hp_runtime_ref(hp_runtime *r);
void hp_runtime_unref(hp_runtime *r);

/* Takes ownership of p and l and a reference to owner; NULL when out of
 * memory (then nothing was taken). */
hp_loaded *hp_loaded_new(hp_runtime *owner, hoist_pipeline *p, hoist_loaded *l);
void hp_loaded_ref(hp_loaded *h);
void hp_loaded_unref(hp_loaded *h);

/* An export's hold on component i: hoist_loaded_hold (its status; an
 * offloaded component not prepared cannot be held) and a reference to h.
 * hp_unhold drops both, on any thread, without the GIL. */
int hp_hold(hp_loaded *h, size_t i);
void hp_unhold(hp_loaded *h, size_t i);
/* Exports of component i alive now. */
size_t hp_exports(const hp_loaded *h, size_t i);

/* ---- Errors (errors.c). */

/* Imports hoist._errors; 0 or -1 with an exception set. */
int hp_errors_init(void);
/* Raises the hoist.Error subclass for status with message (NULL: the
 * status sentence) and, when failure is given, its component and numbers.
 * Returns NULL for `return hp_raise(...)`. */
PyObject *hp_raise(int status, const char *message, const hoist_load_failure *failure);
/* The same with hoist_last_error(rt) as the message (or the sentence). */
PyObject *hp_raise_last(int status, hoist_runtime *rt, const hoist_load_failure *failure);

/* ---- Types. */

extern PyObject *hp_runtime_type;
extern PyObject *hp_loaded_type;
int hp_runtime_type_init(PyObject *module);
int hp_loaded_type_init(PyObject *module);
/* hoist._core.Attached and hoist._core.attach (attach_obj.c). */
int hp_attach_init(PyObject *module);

typedef struct hp_runtime_obj {
  PyObject_HEAD
  hp_runtime *core; /* NULL once closed */
  char device[32];
} hp_runtime_obj;

/* Wraps a fresh load in a Loaded object; consumes the reference of h. */
PyObject *hp_loaded_wrap(hp_loaded *h);

/* ---- Work on a C thread (load_job.c).  A load runs on a C thread while
 * the calling thread waits without the GIL in short slices, checking
 * signals (Ctrl-C cancels the work) and reporting progress to a Python
 * callable on its own thread. */

/* What the work gets from its job: the runtime, and the fields to put in
 * its options struct (cancel flag, failure, progress and tensor filter
 * callbacks, NULL when none). */
typedef struct hp_job_env {
  hoist_runtime *rt;
  const volatile int *cancel;
  hoist_load_failure *failure;
  hoist_progress_fn progress;
  void *progress_user;
  hoist_tensor_filter_fn filter;
  void *filter_user;
} hp_job_env;

/* Puts env's fields into an options struct o: a hoist_load_options or a
 * hoist_load_into_options, which name them alike. */
#define HP_ENV_OPTIONS(o, env)                   \
  do {                                           \
    (o).cancel = (env)->cancel;                  \
    (o).failure = (env)->failure;                \
    (o).progress = (env)->progress;              \
    (o).progress_user = (env)->progress_user;    \
    (o).tensor_filter = (env)->filter;           \
    (o).tensor_filter_user = (env)->filter_user; \
  } while (0)

/* The work: runs on the C thread with every signal blocked; returns a
 * library status (its detail is taken from the thread for the message). */
typedef int (*hp_work_fn)(const hp_job_env *env, void *arg);

/* Runs work(env, arg) on a C thread.  progress: a callable given
 * (component, done, total) on this thread, or None; filter: a callable
 * (component, tensor) -> bool that the library's tensor filter calls (with
 * the GIL taken on the work's thread, before any lock of the library), or
 * None.  Returns 0 when the work succeeded and nothing raised; else -1
 * with an exception set (the work's failure as a hoist.Error, Ctrl-C's
 * KeyboardInterrupt, or what progress or filter raised) — then the caller
 * undoes whatever the work made. */
int hp_job_run(hp_runtime *owner, hp_work_fn work, void *arg, PyObject *progress,
               PyObject *filter);

/* Runtime.load: hp_job_run of a pipeline open and load; a Loaded, or NULL
 * with an exception.  With go (not NULL) the loading thread first joins
 * that group of ranks and leaves it after the load.  path and options are
 * borrowed. */
PyObject *hp_load_run(hp_runtime *owner, const char *path, const hoist_pipeline_options *po,
                      const hoist_load_options *lo, const hoist_group_options *go,
                      PyObject *progress, PyObject *filter);

/* Runtime.load_into (load_into.c): the method itself. */
PyObject *hp_runtime_load_into(PyObject *self, PyObject *args);
/* The open runtime core of a Runtime object; NULL with ValueError when it
 * is closed. */
hp_runtime *hp_runtime_core(PyObject *self);

/* A tuple or list of str as a NULL-terminated array of UTF-8 strings for
 * hoist_load_options.tensors; *keep holds the bytes objects they live in.
 * Free both with hp_patterns_free after the load.  None gives NULL with
 * *keep NULL.  -1 with an exception on a non-str item. */
int hp_patterns(PyObject *seq, const char ***out, PyObject **keep);
void hp_patterns_free(const char **patterns, PyObject *keep);

/* ---- Descriptions (describe.c), shared by Loaded and Attached. */

/* A str from UTF-8 text (stray bytes replaced). */
PyObject *hp_text(const char *s);
/* {name, residency, bytes, device_bytes, device_range, seconds,
 * tensor_count, exported} of a component. */
PyObject *hp_component_dict(const hoist_loaded_info *c, size_t exported);
/* (dtype, shape, nbytes, device_ptr or None when not mapped, carrier,
 * carrier_shape) of a tensor. */
PyObject *hp_tensor_tuple(const hoist_tensor_info *t, int mapped, uint64_t addr);
/* (sharded, rank, world_size, dim, offset, length, padded_length, global
 * shape) of a tensor loaded with ranks (hoist_loaded_tensor_shard). */
PyObject *hp_shard_tuple(const hoist_shard_info *s);

/* ---- DLPack (dlpack.c). */

/* A "dltensor" capsule for tensor `name` of component i of h, or NULL with
 * an exception. */
PyObject *hp_dlpack_export(hp_loaded *h, size_t i, const char *name);
/* Drops the hold an export took on component i of owner (any thread, no
 * GIL needed). */
typedef void (*hp_unhold_fn)(void *owner, size_t component);
/* The capsule of tensor t at addr on device, whose deleter calls
 * unhold(owner, component); the caller took that hold, which a failure
 * drops again (NULL with an exception). */
PyObject *hp_dlpack_capsule(const hoist_tensor_info *t, uint64_t addr, const char *device,
                            void *owner, size_t component, hp_unhold_fn unhold);
/* (device_type, device_id) as DLPack numbers for a device name ("host",
 * "cuda:N"); -1 with an exception when unknown. */
int hp_dlpack_device(const char *device, int *type, int *id);
/* The hoist dtype of a DLPack dtype (code, bits, lanes); -1 when hoist has
 * none. */
int hp_dlpack_hoist_dtype(uint8_t code, uint8_t bits, uint16_t lanes, hoist_dtype *out);
/* The DLPack type a hoist dtype is exported as, its name ("uint8", ..) and
 * whether it is the dtype itself (1) or a byte carrier (0). */
typedef struct hp_carrier {
  uint8_t code, bits;
  const char *name;
  int exact;
} hp_carrier;
hp_carrier hp_dlpack_carrier(hoist_dtype d);
/* The carrier's shape for a tensor: the file's shape when exact, else the
 * bytes (last dimension scaled to bytes when it divides, else flat).
 * Returns the number of dimensions written to shape (at most ndim, or 1). */
int hp_carrier_shape(const hoist_tensor_info *t, int64_t *shape);

#endif /* HOIST_PY_H */
