/* load_into.c — Runtime.load_into: one component's tensors into memory the
 * caller owns, described by DLPack capsules (the "dltensor" capsules that
 * torch, numpy and any __dlpack__ object produce).
 *
 * Each capsule is read, not consumed: its data pointer plus byte_offset,
 * dtype, shape, strides and device become a hoist_load_target, and the
 * producer keeps the memory (the caller holds the objects and the
 * capsules for the call).  Here only what a capsule itself can get wrong
 * is refused: another device than the runtime's, strides that are not
 * C-contiguous, a dtype hoist has no name for.  Everything about the
 * tensors (names, sizes, shapes, dtype pairs, overlap, memory the device
 * may write, another process's pointers) is hoist_load_into's to check,
 * before any byte moves.  The load itself runs as Runtime.load's does
 * (load_job.c): on a C thread, Ctrl-C cancelling it. */
#include "hoist_py.h"

#include <dlpack/dlpack.h>
#include <stdlib.h>
#include <string.h>

/* kDLCUDAManaged, unified memory: written like the card's own. */
#define HP_DL_CUDA_MANAGED 13

/* One call's targets and what keeps them: the names' bytes, the shapes,
 * the filled flags, and the names of the tensors left without a target. */
typedef struct into_call {
  const char *path;
  const char *component;
  hoist_load_target *targets;
  uint64_t *shapes;
  size_t n;
  PyObject *names; /* tuple of bytes */
  hoist_load_into_options o;
  unsigned char *filled;
  char **missing;
  size_t nmissing, cap_missing;
  int missing_oom;
} into_call;

static void into_call_free(into_call *c) {
  for (size_t k = 0; k < c->nmissing; k++) free(c->missing[k]);
  free(c->missing);
  PyMem_Free(c->targets);
  PyMem_Free(c->shapes);
  PyMem_Free(c->filled);
  Py_XDECREF(c->names);
}

/* The missing callback: on the work's thread, no GIL; copies the name. */
static void note_missing(void *user, const char *tensor) {
  into_call *c = user;
  if (c->nmissing == c->cap_missing) {
    size_t cap = c->cap_missing > 0 ? 2 * c->cap_missing : 16;
    char **grown = realloc(c->missing, cap * sizeof *grown);
    if (grown == NULL) {
      c->missing_oom = 1;
      return;
    }
    c->missing = grown;
    c->cap_missing = cap;
  }
  char *copy = strdup(tensor);
  if (copy == NULL) c->missing_oom = 1;
  else c->missing[c->nmissing++] = copy;
}

static PyObject *dest_error(PyObject *type, PyObject *name, const char *what) {
  PyErr_Format(type, "hoist: destination %R: %s", name, what);
  return NULL;
}

/* Whether a DLTensor's strides (NULL: compact) lay it out C-contiguous;
 * dimensions of size 1 may carry any stride, as torch gives them. */
static int c_contiguous(const DLTensor *t) {
  if (t->strides == NULL) return 1;
  int64_t want = 1;
  for (int k = t->ndim - 1; k >= 0; k--) {
    if (t->shape[k] == 0) return 1; /* empty: nothing to lay out */
    if (t->shape[k] != 1 && t->strides[k] != want) return 0;
    want *= t->shape[k];
  }
  return 1;
}

/* Target k from (name, capsule, dtype name or None), on the device whose
 * DLPack numbers are dev_type/dev_id.  shape: room for the capsule's
 * dimensions, ndim at most 32. */
static int read_target(PyObject *item, int dev_type, int dev_id, hoist_load_target *x,
                       uint64_t *shape, PyObject **name_bytes) {
  PyObject *name, *capsule, *override;
  if (!PyArg_ParseTuple(item, "UOO", &name, &capsule, &override)) return -1;
  if (!PyCapsule_IsValid(capsule, "dltensor"))
    return dest_error(PyExc_TypeError, name, "__dlpack__ gave no unused \"dltensor\" capsule"),
           -1;
  const DLManagedTensor *m = PyCapsule_GetPointer(capsule, "dltensor");
  const DLTensor *t = &m->dl_tensor;
  const int type = (int)t->device.device_type;
  if (!(type == dev_type || (dev_type == kDLCUDA && type == HP_DL_CUDA_MANAGED)) ||
      t->device.device_id != dev_id) {
    PyErr_Format(PyExc_ValueError,
                 "hoist: destination %R is on DLPack device (%d, %d), the runtime's device is "
                 "(%d, %d)",
                 name, type, (int)t->device.device_id, dev_type, dev_id);
    return -1;
  }
  if (t->ndim < 0 || t->ndim > 32)
    return dest_error(PyExc_ValueError, name, "more than 32 dimensions"), -1;
  if (!c_contiguous(t))
    return dest_error(PyExc_ValueError, name,
                      "not contiguous (hoist writes a tensor's bytes in one piece; pass a "
                      "contiguous tensor)"),
           -1;
  hoist_dtype dtype;
  if (override != Py_None) {
    PyObject *b = PyUnicode_AsUTF8String(override);
    int bad = b == NULL || hoist_dtype_from_name(PyBytes_AsString(b),
                                                 (size_t)PyBytes_Size(b), &dtype) != HOIST_OK;
    Py_XDECREF(b);
    if (bad) return dest_error(PyExc_ValueError, name, "unknown dtype override"), -1;
  } else if (hp_dlpack_hoist_dtype(t->dtype.code, t->dtype.bits, t->dtype.lanes, &dtype) < 0) {
    PyErr_Format(PyExc_TypeError,
                 "hoist: destination %R has DLPack dtype (code %d, %d bits, %d lanes), which no "
                 "safetensors dtype is",
                 name, (int)t->dtype.code, (int)t->dtype.bits, (int)t->dtype.lanes);
    return -1;
  }
  uint64_t nbytes = (uint64_t)t->dtype.bits / 8 * t->dtype.lanes;
  for (int k = 0; k < t->ndim; k++) {
    if (t->shape[k] < 0) return dest_error(PyExc_ValueError, name, "negative dimension"), -1;
    shape[k] = (uint64_t)t->shape[k];
    if (__builtin_mul_overflow(nbytes, shape[k], &nbytes))
      return dest_error(PyExc_ValueError, name, "size overflows"), -1;
  }
  if ((*name_bytes = PyUnicode_AsUTF8String(name)) == NULL) return -1;
  /* A byte carrier of another dtype (torch's float8 viewed as uint8) has
   * that dtype's elements only when both are one byte. */
  const int same_elements = override == Py_None || hoist_dtype_bits(dtype) == 8;
  *x = (hoist_load_target){PyBytes_AsString(*name_bytes),
                           (uint64_t)(uintptr_t)t->data + t->byte_offset,
                           nbytes,
                           dtype,
                           (uint32_t)t->ndim,
                           same_elements ? shape : NULL};
  return 0;
}

/* Every target of the list items. */
static int read_targets(PyObject *items, const char *device, into_call *c) {
  int dev_type, dev_id;
  if (hp_dlpack_device(device, &dev_type, &dev_id) < 0) return -1;
  PyObject *seq = PySequence_Tuple(items);
  if (seq == NULL) return -1;
  c->n = (size_t)PyTuple_Size(seq);
  c->targets = PyMem_Calloc(c->n + 1, sizeof *c->targets);
  c->shapes = PyMem_Calloc((c->n + 1) * 32, sizeof *c->shapes);
  c->filled = PyMem_Calloc(c->n + 1, 1);
  c->names = PyTuple_New((Py_ssize_t)c->n);
  int rc = c->targets != NULL && c->shapes != NULL && c->filled != NULL && c->names != NULL
               ? 0
               : -1;
  if (rc < 0 && !PyErr_Occurred()) PyErr_NoMemory();
  for (size_t k = 0; k < c->n && rc == 0; k++) {
    PyObject *b = NULL;
    rc = read_target(PyTuple_GetItem(seq, (Py_ssize_t)k), dev_type, dev_id, &c->targets[k],
                     c->shapes + 32 * k, &b);
    if (b != NULL) PyTuple_SetItem(c->names, (Py_ssize_t)k, b);
  }
  Py_DECREF(seq);
  return rc;
}

static int open_and_load_into(const hp_job_env *env, void *arg) {
  into_call *c = arg;
  HP_ENV_OPTIONS(c->o, env);
  hoist_pipeline *p = NULL;
  int rc = hoist_pipeline_open(env->rt, c->path, NULL, &p);
  if (rc == HOIST_OK) rc = hoist_load_into(env->rt, p, c->component, c->targets, c->n, &c->o);
  hoist_pipeline_close(p);
  return rc;
}

static PyObject *text_list(char **v, size_t n) {
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (size_t k = 0; list != NULL && k < n; k++) {
    PyObject *s = PyUnicode_DecodeUTF8(v[k], (Py_ssize_t)strlen(v[k]), "replace");
    if (s == NULL) Py_CLEAR(list);
    else PyList_SetItem(list, (Py_ssize_t)k, s);
  }
  return list;
}

/* (missing, unexpected): the tensors left without a target, the targets
 * that named no selected tensor. */
static PyObject *report(const into_call *c) {
  PyObject *missing = text_list(c->missing, c->nmissing), *unexpected = PyList_New(0);
  for (size_t k = 0; missing != NULL && unexpected != NULL && k < c->n; k++) {
    if (c->filled[k]) continue;
    PyObject *s = PyUnicode_DecodeUTF8(c->targets[k].tensor,
                                       (Py_ssize_t)strlen(c->targets[k].tensor), "replace");
    if (s == NULL || PyList_Append(unexpected, s) < 0) Py_CLEAR(unexpected);
    Py_XDECREF(s);
  }
  if (missing == NULL || unexpected == NULL) {
    Py_XDECREF(missing);
    Py_XDECREF(unexpected);
    return NULL;
  }
  return Py_BuildValue("(NN)", missing, unexpected);
}

/* load_into(path, component, targets, strict, patterns, filter, verify,
 * read, progress) -> (missing, unexpected).  targets: a sequence of
 * (name, capsule, dtype override or None). */
PyObject *hp_runtime_load_into(PyObject *self, PyObject *args) {
  const char *path, *component;
  PyObject *items, *patterns, *filter, *progress;
  int strict, verify, read_mode;
  if (!PyArg_ParseTuple(args, "szOpOOpiO", &path, &component, &items, &strict, &patterns, &filter,
                        &verify, &read_mode, &progress))
    return NULL;
  hp_runtime *r = hp_runtime_core(self);
  if (r == NULL) return NULL;
  into_call c = {.path = path, .component = component};
  c.o = (hoist_load_into_options)HOIST_LOAD_INTO_OPTIONS_INIT;
  PyObject *result = NULL, *keep = NULL;
  const char **globs = NULL;
  if (read_targets(items, ((hp_runtime_obj *)self)->device, &c) < 0 ||
      hp_patterns(patterns, &globs, &keep) < 0)
    goto done;
  c.o.strict = strict;
  c.o.verify = verify;
  c.o.read_mode = (hoist_read_mode)read_mode;
  c.o.tensors = globs;
  c.o.filled = c.filled;
  c.o.missing = note_missing;
  c.o.missing_user = &c;
  if (hp_job_run(r, open_and_load_into, &c, progress, filter) < 0) goto done;
  if (c.missing_oom) {
    PyErr_NoMemory();
    goto done;
  }
  result = report(&c);
done:
  hp_patterns_free(globs, keep);
  into_call_free(&c);
  return result;
}
