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

/* One load: the pipeline it was made from (which must outlive it), the
 * loaded handle, and a count of exported tensors per component.  One
 * reference belongs to the Python Loaded object until it is closed, one to
 * each DLPack export until its deleter runs; the last one closes the load,
 * so memory under a live export is never freed. */
typedef struct hp_loaded {
  atomic_size_t refs;
  hp_runtime *owner;
  hoist_pipeline *p;
  hoist_loaded *l;
  size_t ncomps;
  atomic_size_t *holds; /* per component, load order */
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

/* Per-component export holds: a held component is not freed by release. */
void hp_hold(hp_loaded *h, size_t i);
void hp_unhold(hp_loaded *h, size_t i);
size_t hp_holds(const hp_loaded *h, size_t i);
/* hoist_release_after_use, refused with HP_STATUS_BUSY while held. */
int hp_release(hp_loaded *h, size_t i, int *moved);

/* The status a release of a held component gets: the value the library's
 * BUSY status takes. */
#define HP_STATUS_BUSY (-7)

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

/* The load of runtime_obj.c's Runtime.load on a C thread (load_job.c):
 * the GIL is released while it runs, signals are checked in short slices
 * (Ctrl-C cancels it), and progress is reported to `progress` (a callable
 * or None) on the calling thread.  With go (not NULL) the loading thread
 * first joins that group of ranks and leaves it after the load.  path and
 * options are borrowed. */
PyObject *hp_load_run(hp_runtime *owner, const char *path, const hoist_pipeline_options *po,
                      const hoist_load_options *lo, const hoist_group_options *go,
                      PyObject *progress);

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
