/* loaded_obj.c — hoist._core.Loaded: one load as Python sees it.  It holds
 * one reference to the load's core until close(); exported tensors hold
 * their own (dlpack.c), so close() frees the arenas only when no export
 * is alive.  The Python class hoist.Loaded builds the mappings over it. */
#include "hoist_py.h"

#include <string.h>

PyObject *hp_loaded_type;

typedef struct loaded_obj {
  PyObject_HEAD
  hp_loaded *core; /* NULL once closed */
} loaded_obj;

static loaded_obj *self_of(PyObject *o) { return (loaded_obj *)o; }

static hp_loaded *open_core(PyObject *self) {
  hp_loaded *h = self_of(self)->core;
  if (h == NULL) PyErr_SetString(PyExc_ValueError, "hoist: the Loaded is closed");
  return h;
}

/* Component i, checked. */
static hp_loaded *core_at(PyObject *self, Py_ssize_t i) {
  hp_loaded *h = open_core(self);
  if (h != NULL && (i < 0 || (size_t)i >= h->ncomps)) {
    PyErr_Format(PyExc_IndexError, "hoist: no component %zd", i);
    return NULL;
  }
  return h;
}

PyObject *hp_loaded_wrap(hp_loaded *h) {
  PyObject *o = PyType_GenericAlloc((PyTypeObject *)hp_loaded_type, 0);
  if (o == NULL) {
    hp_loaded_unref(h);
    return NULL;
  }
  self_of(o)->core = h;
  return o;
}

static void loaded_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  hp_loaded_unref(self_of(self)->core);
  freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
  tp_free(self);
  Py_DECREF(tp);
}

static PyObject *loaded_close(PyObject *self, PyObject *unused) {
  hp_loaded *h = self_of(self)->core;
  self_of(self)->core = NULL;
  hp_loaded_unref(h);
  Py_RETURN_NONE;
}

static PyObject *loaded_closed(PyObject *self, void *unused) {
  return PyBool_FromLong(self_of(self)->core == NULL);
}

/* components() -> [dict] in load order */
static PyObject *loaded_components(PyObject *self, PyObject *unused) {
  hp_loaded *h = open_core(self);
  if (h == NULL) return NULL;
  PyObject *list = PyList_New((Py_ssize_t)h->ncomps);
  if (list == NULL) return NULL;
  for (size_t i = 0; i < h->ncomps; i++) {
    PyObject *d = hp_component_dict(hoist_loaded_component(h->l, i), hp_exports(h, i));
    if (d == NULL) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SetItem(list, (Py_ssize_t)i, d);
  }
  return list;
}

/* summary() -> (device, seconds, total_bytes) */
static PyObject *loaded_summary(PyObject *self, PyObject *unused) {
  hp_loaded *h = open_core(self);
  if (h == NULL) return NULL;
  return Py_BuildValue("(sdK)", hoist_loaded_device(h->l), hoist_loaded_seconds(h->l),
                       (unsigned long long)hoist_loaded_total_bytes(h->l));
}

/* tensor_names(i) -> [name] in name order, as the load placed them (the
 * selected tensors of a filtered load). */
static PyObject *loaded_tensor_names(PyObject *self, PyObject *args) {
  Py_ssize_t i;
  if (!PyArg_ParseTuple(args, "n", &i)) return NULL;
  hp_loaded *h = core_at(self, i);
  if (h == NULL) return NULL;
  const size_t n = hoist_loaded_component(h->l, (size_t)i)->tensor_count;
  PyObject *list = PyList_New((Py_ssize_t)n);
  for (size_t j = 0; list != NULL && j < n; j++) {
    uint64_t addr = 0;
    const hoist_tensor_info *t = NULL;
    /* UNSUPPORTED (offloaded, not prepared) still describes the tensor. */
    int rc = hoist_loaded_tensor_at(h->l, (size_t)i, j, &addr, &t);
    PyObject *s = rc == HOIST_OK || rc == HOIST_UNSUPPORTED ? hp_text(t->name)
                                                            : hp_raise_last(rc, h->owner->rt, NULL);
    if (s == NULL) Py_CLEAR(list);
    else PyList_SetItem(list, (Py_ssize_t)j, s);
  }
  return list;
}

/* The (component index, tensor name) arguments of a tensor method: the
 * load and the component, or NULL with an exception set. */
static hp_loaded *tensor_args(PyObject *self, PyObject *args, const hoist_loaded_info **c,
                              Py_ssize_t *i, const char **name) {
  if (!PyArg_ParseTuple(args, "ns", i, name)) return NULL;
  hp_loaded *h = core_at(self, *i);
  if (h != NULL) *c = hoist_loaded_component(h->l, (size_t)*i);
  return h;
}
/* tensor(i, name) -> (dtype, shape, nbytes, device_ptr or None, carrier,
 * carrier_shape, (begin, end)).  device_ptr is None while the component is
 * offloaded and not prepared; (begin, end) are the file's data_offsets. */
static PyObject *loaded_tensor(PyObject *self, PyObject *args) {
  Py_ssize_t i;
  const char *name;
  const hoist_loaded_info *c = NULL;
  hp_loaded *h = tensor_args(self, args, &c, &i, &name);
  if (h == NULL) return NULL;
  uint64_t addr = 0;
  const hoist_tensor_info *t = NULL;
  int rc = hoist_loaded_tensor(h->l, c->name, name, &addr, &t);
  if (rc == HOIST_NOT_FOUND) { /* a mapping's miss, saying why (a filter, say) */
    PyObject *why = hp_text(hoist_last_error(h->owner->rt));
    if (why != NULL) PyErr_SetObject(PyExc_KeyError, why);
    Py_XDECREF(why);
    return NULL;
  }
  if (rc != HOIST_OK && rc != HOIST_UNSUPPORTED) return hp_raise_last(rc, h->owner->rt, NULL);
  return hp_tensor_tuple(t, rc == HOIST_OK, addr);
}

/* shard(i, name) -> (sharded, rank, world_size, dim, offset, length,
 * padded_length, global shape): which part of the tensor this rank holds. */
static PyObject *loaded_shard(PyObject *self, PyObject *args) {
  Py_ssize_t i;
  const char *name;
  const hoist_loaded_info *c = NULL;
  hp_loaded *h = tensor_args(self, args, &c, &i, &name);
  if (h == NULL) return NULL;
  hoist_shard_info s;
  int rc = hoist_loaded_tensor_shard(h->l, c->name, name, &s);
  if (rc == HOIST_NOT_FOUND) {
    PyErr_Format(PyExc_KeyError, "%s", name);
    return NULL;
  }
  if (rc != HOIST_OK) return hp_raise_last(rc, h->owner->rt, NULL);
  return hp_shard_tuple(&s);
}

/* export(i, name) -> "dltensor" capsule */
static PyObject *loaded_export(PyObject *self, PyObject *args) {
  Py_ssize_t i;
  const char *name;
  if (!PyArg_ParseTuple(args, "ns", &i, &name)) return NULL;
  hp_loaded *h = core_at(self, i);
  if (h == NULL) return NULL;
  return hp_dlpack_export(h, (size_t)i, name);
}

/* dlpack_device() -> (device_type, device_id) */
static PyObject *loaded_dlpack_device(PyObject *self, PyObject *unused) {
  hp_loaded *h = open_core(self);
  if (h == NULL) return NULL;
  int type, id;
  if (hp_dlpack_device(hoist_loaded_device(h->l), &type, &id) < 0) return NULL;
  return Py_BuildValue("(ii)", type, id);
}

/* prepare(i, stream) -> moved.  stream: a cudaStream_t as an integer, 0 for
 * the default stream. */
static PyObject *loaded_prepare(PyObject *self, PyObject *args) {
  Py_ssize_t i;
  unsigned long long stream;
  if (!PyArg_ParseTuple(args, "nK", &i, &stream)) return NULL;
  hp_loaded *h = core_at(self, i);
  if (h == NULL) return NULL;
  int moved = 0, rc;
  hp_loaded_ref(h); /* close() from another thread meanwhile */
  Py_BEGIN_ALLOW_THREADS
  rc = hoist_prepare_for_use(h->l, (size_t)i, (void *)(uintptr_t)stream, &moved);
  Py_END_ALLOW_THREADS
  PyObject *r = rc == HOIST_OK ? PyBool_FromLong(moved) : hp_raise_last(rc, h->owner->rt, NULL);
  hp_loaded_unref(h);
  return r;
}

/* release(i) -> moved; refused (BUSY) while tensors of it are exported. */
static PyObject *loaded_release(PyObject *self, PyObject *args) {
  Py_ssize_t i;
  if (!PyArg_ParseTuple(args, "n", &i)) return NULL;
  hp_loaded *h = core_at(self, i);
  if (h == NULL) return NULL;
  int moved = 0, rc;
  hp_loaded_ref(h); /* close() from another thread meanwhile */
  Py_BEGIN_ALLOW_THREADS
  rc = hoist_release_after_use(h->l, (size_t)i, &moved);
  Py_END_ALLOW_THREADS
  PyObject *r = NULL;
  if (rc == HOIST_BUSY) {
    /* Held: the library refused; say by what. */
    const char *name = hoist_loaded_component(h->l, (size_t)i)->name;
    const size_t n = hp_exports(h, (size_t)i);
    char msg[256];
    snprintf(msg, sizeof msg,
             "%s: %zu exported tensor%s still alive; drop them before releasing the component",
             name, n, n == 1 ? " is" : "s are");
    hp_raise(rc, msg, NULL);
  } else if (rc != HOIST_OK) {
    hp_raise_last(rc, h->owner->rt, NULL);
  } else {
    r = PyBool_FromLong(moved);
  }
  hp_loaded_unref(h);
  return r;
}

static PyMethodDef loaded_methods[] = {
    {"close", loaded_close, METH_NOARGS, "Drops this object's hold on the load."},
    {"components", loaded_components, METH_NOARGS, "components() -> [dict], load order"},
    {"summary", loaded_summary, METH_NOARGS, "summary() -> (device, seconds, total_bytes)"},
    {"tensor_names", loaded_tensor_names, METH_VARARGS, "tensor_names(i) -> [str]"},
    {"shard", loaded_shard, METH_VARARGS,
     "shard(i, name) -> (sharded, rank, world_size, dim, offset, length, padded, shape)"},
    {"tensor", loaded_tensor, METH_VARARGS, "tensor(i, name) -> (dtype, shape, nbytes, ptr, "
                                            "carrier, carrier_shape, data_offsets)"},
    {"export", loaded_export, METH_VARARGS, "export(i, name) -> DLPack capsule"},
    {"dlpack_device", loaded_dlpack_device, METH_NOARGS, "(device_type, device_id)"},
    {"prepare", loaded_prepare, METH_VARARGS, "prepare(i, stream) -> moved"},
    {"release", loaded_release, METH_VARARGS, "release(i) -> moved"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef loaded_getset[] = {
    {"closed", loaded_closed, NULL, "True once close() ran", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot loaded_slots[] = {
    {Py_tp_dealloc, (void *)loaded_dealloc},
    {Py_tp_methods, loaded_methods},
    {Py_tp_getset, loaded_getset},
    {Py_tp_doc, (void *)"A load made by Runtime.load (see hoist.Loaded)."},
    {0, NULL},
};

static PyType_Spec loaded_spec = {"hoist._core.Loaded", sizeof(loaded_obj), 0,
                                  Py_TPFLAGS_DEFAULT, loaded_slots};

int hp_loaded_type_init(PyObject *module) {
  hp_loaded_type = PyType_FromSpec(&loaded_spec);
  if (hp_loaded_type == NULL) return -1;
  Py_INCREF(hp_loaded_type);
  if (PyModule_AddObject(module, "Loaded", hp_loaded_type) < 0) {
    Py_DECREF(hp_loaded_type);
    return -1;
  }
  return 0;
}
