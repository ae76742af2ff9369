/* attach_obj.c — hoist._core.attach and hoist._core.Attached: a pipeline
 * that `hoist serve` keeps resident in another process, mapped into this
 * one (hoist_attach), as Python sees it.  The Python class hoist.Attached
 * builds the same mappings over it as hoist.Loaded does over a load.
 *
 * Lifetime is the Loaded's: the attachment lives in a small C core with an
 * atomic reference count, one reference for the Python object until
 * detach() and one per exported tensor until its DLPack deleter runs (on
 * any thread, with or without the GIL).  The last one detaches, so a
 * tensor never outlives the mapping under it.  Exports also count per
 * component, and release() of a component whose tensors are exported is
 * refused (hoist.Busy).
 *
 * The library's calls on one hoist_attached must not overlap
 * prepare/release; a mutex in the core orders them, taken without the GIL
 * where a call may wait for the server.
 *
 * Waiting for a server that is still loading: each try asks with no_wait
 * (the server answers NOT_READY at once while it loads), and between tries
 * the caller sleeps 50 ms without the GIL and runs Python's signal
 * handlers, so Ctrl-C raises KeyboardInterrupt within a slice and nothing
 * is left connected or mapped. */
#include "hoist_py.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Pause between two tries while the server loads. */
#define RETRY_NS (50 * 1000 * 1000L)

typedef struct hp_attached {
  atomic_size_t refs;
  hoist_attached *a;
  pthread_mutex_t lock;
  size_t ncomps;
  atomic_size_t *holds; /* exported tensors alive, per component */
} hp_attached;

static void attached_unref(hp_attached *h) {
  if (h == NULL || atomic_fetch_sub(&h->refs, 1) != 1) return;
  hoist_detach(h->a);
  pthread_mutex_destroy(&h->lock);
  free(h->holds);
  free(h);
}

static void attached_unhold(void *owner, size_t component) {
  hp_attached *h = owner;
  atomic_fetch_sub(&h->holds[component], 1);
  attached_unref(h);
}

/* Takes the core's lock; a caller that holds the GIL waits for it without. */
static void lock_core(hp_attached *h) {
  if (pthread_mutex_trylock(&h->lock) == 0) return;
  Py_BEGIN_ALLOW_THREADS
  pthread_mutex_lock(&h->lock);
  Py_END_ALLOW_THREADS
}

static void unlock_core(hp_attached *h) { pthread_mutex_unlock(&h->lock); }

/* ------------------------------------------------------------------------ */
/* The Python type */

static PyObject *hp_attached_type;

typedef struct attached_obj {
  PyObject_HEAD
  hp_attached *core; /* NULL once detached */
} attached_obj;

static attached_obj *self_of(PyObject *o) { return (attached_obj *)o; }

static hp_attached *open_core(PyObject *self) {
  hp_attached *h = self_of(self)->core;
  if (h == NULL) PyErr_SetString(PyExc_ValueError, "hoist: the Attached is detached");
  return h;
}

static hp_attached *core_at(PyObject *self, Py_ssize_t i) {
  hp_attached *h = open_core(self);
  if (h != NULL && (i < 0 || (size_t)i >= h->ncomps)) {
    PyErr_Format(PyExc_IndexError, "hoist: no component %zd", i);
    return NULL;
  }
  return h;
}

/* The library's detail for the calling thread, as the exception. */
static PyObject *raise_last(int rc) { return hp_raise(rc, hoist_last_error(NULL), NULL); }

static void attached_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  hp_attached *h = self_of(self)->core;
  if (h != NULL) {
    /* The last reference detaches, which waits for the server's word. */
    Py_BEGIN_ALLOW_THREADS
    attached_unref(h);
    Py_END_ALLOW_THREADS
  }
  freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
  tp_free(self);
  Py_DECREF(tp);
}

static PyObject *attached_close(PyObject *self, PyObject *unused) {
  hp_attached *h = self_of(self)->core;
  self_of(self)->core = NULL;
  if (h != NULL) {
    Py_BEGIN_ALLOW_THREADS
    attached_unref(h);
    Py_END_ALLOW_THREADS
  }
  Py_RETURN_NONE;
}

static PyObject *attached_closed(PyObject *self, void *unused) {
  return PyBool_FromLong(self_of(self)->core == NULL);
}

/* components() -> [dict] in the server's load order */
static PyObject *attached_components(PyObject *self, PyObject *unused) {
  hp_attached *h = open_core(self);
  if (h == NULL) return NULL;
  PyObject *list = PyList_New((Py_ssize_t)h->ncomps);
  if (list == NULL) return NULL;
  lock_core(h);
  for (size_t i = 0; i < h->ncomps && list != NULL; i++) {
    PyObject *d = hp_component_dict(hoist_attached_component(h->a, i),
                                    atomic_load(&h->holds[i]));
    if (d == NULL) Py_CLEAR(list);
    else PyList_SetItem(list, (Py_ssize_t)i, d);
  }
  unlock_core(h);
  return list;
}

/* summary() -> (device, generation, fd) */
static PyObject *attached_summary(PyObject *self, PyObject *unused) {
  hp_attached *h = open_core(self);
  if (h == NULL) return NULL;
  return Py_BuildValue("(sIi)", hoist_attached_device(h->a), hoist_attached_generation(h->a),
                       hoist_attached_fd(h->a));
}

/* tensor_names(i) -> [name] in name order */
static PyObject *attached_tensor_names(PyObject *self, PyObject *args) {
  Py_ssize_t i;
  if (!PyArg_ParseTuple(args, "n", &i)) return NULL;
  hp_attached *h = core_at(self, i);
  if (h == NULL) return NULL;
  lock_core(h);
  size_t n = hoist_attached_component(h->a, (size_t)i)->tensor_count;
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (size_t j = 0; list != NULL && j < n; j++) {
    uint64_t addr;
    const hoist_tensor_info *t = NULL;
    /* UNSUPPORTED (not mapped) still describes the tensor. */
    int rc = hoist_attached_tensor_at(h->a, (size_t)i, j, &addr, &t);
    PyObject *s = t != NULL ? hp_text(t->name) : raise_last(rc);
    if (s == NULL) Py_CLEAR(list);
    else PyList_SetItem(list, (Py_ssize_t)j, s);
  }
  unlock_core(h);
  return list;
}

/* Parses (i, name) and looks the tensor up under the lock: HOIST_OK with
 * its address, HOIST_UNSUPPORTED (not mapped here; *t still describes it),
 * or -1 with an exception (bad arguments, an unknown name: KeyError, a
 * library failure).  hold: on HOIST_OK also take an export's hold, before
 * the lock goes, so a release() waiting for it sees the hold. */
static int lookup(PyObject *self, PyObject *args, int hold, hp_attached **out, Py_ssize_t *i,
                  uint64_t *addr, const hoist_tensor_info **t) {
  const char *name;
  if (!PyArg_ParseTuple(args, "ns", i, &name)) return -1;
  hp_attached *h = *out = core_at(self, *i);
  if (h == NULL) return -1;
  lock_core(h);
  const char *comp = hoist_attached_component(h->a, (size_t)*i)->name;
  int rc = hoist_attached_tensor(h->a, comp, name, addr, t);
  if (rc == HOIST_OK && hold) {
    atomic_fetch_add(&h->refs, 1);
    atomic_fetch_add(&h->holds[*i], 1);
  }
  unlock_core(h);
  if (rc == HOIST_NOT_FOUND) PyErr_Format(PyExc_KeyError, "%s", name);
  else if (rc != HOIST_OK && rc != HOIST_UNSUPPORTED) raise_last(rc);
  return rc == HOIST_OK || rc == HOIST_UNSUPPORTED ? rc : -1;
}

/* tensor(i, name) -> (dtype, shape, nbytes, device_ptr or None, carrier,
 * carrier_shape), as Loaded.tensor. */
static PyObject *attached_tensor(PyObject *self, PyObject *args) {
  hp_attached *h;
  Py_ssize_t i;
  uint64_t addr = 0;
  const hoist_tensor_info *t = NULL;
  int rc = lookup(self, args, 0, &h, &i, &addr, &t);
  return rc == -1 ? NULL : hp_tensor_tuple(t, rc == HOIST_OK, addr);
}

/* export(i, name) -> "dltensor" capsule holding the attachment */
static PyObject *attached_export(PyObject *self, PyObject *args) {
  hp_attached *h;
  Py_ssize_t i;
  uint64_t addr = 0;
  const hoist_tensor_info *t = NULL;
  int rc = lookup(self, args, 1, &h, &i, &addr, &t);
  if (rc == HOIST_UNSUPPORTED) {
    const char *comp = hoist_attached_component(h->a, (size_t)i)->name;
    char msg[320];
    snprintf(msg, sizeof msg, "%s: offloaded; call attached.prepare('%s') before exporting its "
             "tensors", comp, comp);
    return hp_raise(rc, msg, NULL);
  }
  if (rc == -1) return NULL;
  return hp_dlpack_capsule(t, addr, hoist_attached_device(h->a), h, (size_t)i, attached_unhold);
}

/* dlpack_device() -> (device_type, device_id) */
static PyObject *attached_dlpack_device(PyObject *self, PyObject *unused) {
  hp_attached *h = open_core(self);
  if (h == NULL) return NULL;
  int type, id;
  if (hp_dlpack_device(hoist_attached_device(h->a), &type, &id) < 0) return NULL;
  return Py_BuildValue("(ii)", type, id);
}

/* prepare(i) -> moved: asks the server to make offloaded component i
 * resident and maps it here. */
static PyObject *attached_prepare(PyObject *self, PyObject *args) {
  Py_ssize_t i;
  if (!PyArg_ParseTuple(args, "n", &i)) return NULL;
  hp_attached *h = core_at(self, i);
  if (h == NULL) return NULL;
  int rc, moved;
  atomic_fetch_add(&h->refs, 1); /* a detach() from another thread meanwhile */
  Py_BEGIN_ALLOW_THREADS
  pthread_mutex_lock(&h->lock);
  const hoist_loaded_info *c = hoist_attached_component(h->a, (size_t)i);
  moved = c->residency == HOIST_OFFLOAD && c->device_bytes == 0;
  rc = hoist_attached_prepare(h->a, (size_t)i);
  pthread_mutex_unlock(&h->lock);
  Py_END_ALLOW_THREADS
  PyObject *r = rc == HOIST_OK ? PyBool_FromLong(moved) : raise_last(rc);
  attached_unref(h);
  return r;
}

/* release(i) -> moved; refused (BUSY) while tensors of it are exported. */
static PyObject *attached_release(PyObject *self, PyObject *args) {
  Py_ssize_t i;
  if (!PyArg_ParseTuple(args, "n", &i)) return NULL;
  hp_attached *h = core_at(self, i);
  if (h == NULL) return NULL;
  int rc = HOIST_OK, moved = 0;
  size_t held = 0;
  atomic_fetch_add(&h->refs, 1);
  Py_BEGIN_ALLOW_THREADS
  pthread_mutex_lock(&h->lock);
  /* Exports take their hold under this lock: none appears before the
   * unmap. */
  held = atomic_load(&h->holds[i]);
  if (held == 0) {
    const hoist_loaded_info *c = hoist_attached_component(h->a, (size_t)i);
    moved = c->residency == HOIST_OFFLOAD && c->device_bytes > 0;
    rc = hoist_attached_release(h->a, (size_t)i);
  }
  pthread_mutex_unlock(&h->lock);
  Py_END_ALLOW_THREADS
  PyObject *r;
  if (held > 0) {
    char msg[320];
    snprintf(msg, sizeof msg,
             "%s: %zu exported tensor%s still alive; drop them before releasing the component",
             hoist_attached_component(h->a, (size_t)i)->name, held,
             held == 1 ? " is" : "s are");
    r = hp_raise(HP_STATUS_BUSY, msg, NULL);
  } else {
    r = rc == HOIST_OK ? PyBool_FromLong(moved) : raise_last(rc);
  }
  attached_unref(h);
  return r;
}

/* poll() -> mask of HOIST_ATTACHED_* events since the last call */
static PyObject *attached_poll(PyObject *self, PyObject *unused) {
  hp_attached *h = open_core(self);
  if (h == NULL) return NULL;
  unsigned events = 0;
  lock_core(h);
  int rc = hoist_attached_poll(h->a, &events);
  unlock_core(h);
  if (rc != HOIST_OK) return raise_last(rc);
  return PyLong_FromUnsignedLong(events);
}

static PyMethodDef attached_methods[] = {
    {"close", attached_close, METH_NOARGS, "Drops this object's hold on the attachment."},
    {"components", attached_components, METH_NOARGS, "components() -> [dict], load order"},
    {"summary", attached_summary, METH_NOARGS, "summary() -> (device, generation, fd)"},
    {"tensor_names", attached_tensor_names, METH_VARARGS, "tensor_names(i) -> [str]"},
    {"tensor", attached_tensor, METH_VARARGS, "tensor(i, name) -> (dtype, shape, nbytes, ptr, "
                                              "carrier, carrier_shape)"},
    {"export", attached_export, METH_VARARGS, "export(i, name) -> DLPack capsule"},
    {"dlpack_device", attached_dlpack_device, METH_NOARGS, "(device_type, device_id)"},
    {"prepare", attached_prepare, METH_VARARGS, "prepare(i) -> moved"},
    {"release", attached_release, METH_VARARGS, "release(i) -> moved"},
    {"poll", attached_poll, METH_NOARGS, "poll() -> event mask"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef attached_getset[] = {
    {"closed", attached_closed, NULL, "True once close() ran", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot attached_slots[] = {
    {Py_tp_dealloc, (void *)attached_dealloc},
    {Py_tp_methods, attached_methods},
    {Py_tp_getset, attached_getset},
    {Py_tp_doc, (void *)"A pipeline attached from hoist serve (see hoist.Attached)."},
    {0, NULL},
};

static PyType_Spec attached_spec = {"hoist._core.Attached", sizeof(attached_obj), 0,
                                    Py_TPFLAGS_DEFAULT, attached_slots};

/* ------------------------------------------------------------------------ */
/* attach() */

static hp_attached *core_new(hoist_attached *a) {
  hp_attached *h = calloc(1, sizeof *h);
  size_t n = hoist_attached_component_count(a);
  atomic_size_t *holds = malloc((n > 0 ? n : 1) * sizeof *holds);
  if (h == NULL || holds == NULL || pthread_mutex_init(&h->lock, NULL) != 0) {
    free(h);
    free(holds);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) atomic_init(&holds[i], 0);
  atomic_init(&h->refs, 1);
  h->a = a;
  h->ncomps = n;
  h->holds = holds;
  return h;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One try; the detail is copied out on the thread that failed. */
static int try_attach(const char *path, int no_wait, double timeout, hoist_attached **out,
                      char *detail, size_t size) {
  hoist_attach_options o = HOIST_ATTACH_OPTIONS_INIT;
  o.no_wait = no_wait;
  o.timeout_seconds = timeout;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = hoist_attach_ex(path, &o, out);
  if (rc != HOIST_OK) snprintf(detail, size, "%s", hoist_last_error(NULL));
  Py_END_ALLOW_THREADS
  return rc;
}

/* attach(socket, wait, timeout) -> Attached.  timeout <= 0: none. */
static PyObject *attach(PyObject *module, PyObject *args) {
  const char *path;
  int wait;
  double timeout;
  if (!PyArg_ParseTuple(args, "spd", &path, &wait, &timeout)) return NULL;
  double deadline = timeout > 0 ? now_seconds() + timeout : 0;
  hoist_attached *a = NULL;
  char detail[1024] = "";
  int rc;
  for (;;) {
    double left = deadline > 0 ? deadline - now_seconds() : 0;
    if (deadline > 0 && left <= 0) {
      snprintf(detail, sizeof detail, "attach: %s: the server is still loading after %g s",
               path, timeout);
      rc = HOIST_NOT_READY;
      break;
    }
    rc = try_attach(path, 1, left, &a, detail, sizeof detail);
    if (rc != HOIST_NOT_READY || !wait) break;
    /* Loading: wait a slice, with Ctrl-C seen between slices. */
    Py_BEGIN_ALLOW_THREADS
    struct timespec pause = {0, RETRY_NS};
    nanosleep(&pause, NULL);
    Py_END_ALLOW_THREADS
    if (PyErr_CheckSignals() < 0) return NULL;
  }
  if (rc != HOIST_OK) return hp_raise(rc, detail, NULL);
  hp_attached *h = core_new(a);
  if (h == NULL) {
    Py_BEGIN_ALLOW_THREADS
    hoist_detach(a);
    Py_END_ALLOW_THREADS
    return PyErr_NoMemory();
  }
  PyObject *o = PyType_GenericAlloc((PyTypeObject *)hp_attached_type, 0);
  if (o == NULL) {
    Py_BEGIN_ALLOW_THREADS
    attached_unref(h);
    Py_END_ALLOW_THREADS
    return NULL;
  }
  self_of(o)->core = h;
  return o;
}

static PyMethodDef attach_methods[] = {
    {"attach", attach, METH_VARARGS, "attach(socket, wait, timeout) -> Attached"},
    {NULL, NULL, 0, NULL},
};

int hp_attach_init(PyObject *module) {
  hp_attached_type = PyType_FromSpec(&attached_spec);
  if (hp_attached_type == NULL) return -1;
  Py_INCREF(hp_attached_type);
  if (PyModule_AddObject(module, "Attached", hp_attached_type) < 0) {
    Py_DECREF(hp_attached_type);
    return -1;
  }
  if (PyModule_AddFunctions(module, attach_methods) < 0 ||
      PyModule_AddIntConstant(module, "ATTACHED_SHUTDOWN", HOIST_ATTACHED_SHUTDOWN) < 0 ||
      PyModule_AddIntConstant(module, "ATTACHED_RELOADED", HOIST_ATTACHED_RELOADED) < 0 ||
      PyModule_AddIntConstant(module, "ATTACHED_CLOSED", HOIST_ATTACHED_CLOSED) < 0)
    return -1;
  return 0;
}
