/* describe.c — the Python values a Loaded and an Attached both hand out:
 * a component's summary dict and a tensor's description tuple (and, for a
 * load with ranks, its shard's), built from
 * the library's hoist_loaded_info and hoist_tensor_info the same way for
 * a load in this process and for one attached from hoist serve. */
#include "hoist_py.h"

#include <string.h>

PyObject *hp_text(const char *s) {
  return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

PyObject *hp_component_dict(const hoist_loaded_info *c, size_t exported) {
  return Py_BuildValue(
      "{s:N,s:s,s:K,s:K,s:(KK),s:d,s:n,s:n}", "name", hp_text(c->name), "residency",
      hoist_residency_name(c->residency), "bytes", (unsigned long long)c->bytes, "device_bytes",
      (unsigned long long)c->device_bytes, "device_range", (unsigned long long)c->device_begin,
      (unsigned long long)c->device_end, "seconds", c->seconds, "tensor_count",
      (Py_ssize_t)c->tensor_count, "exported", (Py_ssize_t)exported);
}

static PyObject *shape_tuple(const int64_t *dims, int n) {
  PyObject *t = PyTuple_New(n);
  for (int k = 0; t != NULL && k < n; k++) {
    PyObject *v = PyLong_FromLongLong(dims[k]);
    if (v == NULL) Py_CLEAR(t);
    else PyTuple_SetItem(t, k, v);
  }
  return t;
}

PyObject *hp_tensor_tuple(const hoist_tensor_info *t, int mapped, uint64_t addr) {
  int64_t dims[64], carrier_dims[64];
  if (t->ndim > 64) {
    PyErr_Format(PyExc_ValueError, "hoist: %s has %u dimensions", t->name, t->ndim);
    return NULL;
  }
  for (uint32_t k = 0; k < t->ndim; k++) dims[k] = (int64_t)t->shape[k];
  int cn = hp_carrier_shape(t, carrier_dims);
  hp_carrier carrier = hp_dlpack_carrier(t->dtype);
  PyObject *ptr = mapped ? PyLong_FromUnsignedLongLong(addr) : (Py_INCREF(Py_None), Py_None);
  return Py_BuildValue("(sNKNsN(KK))", hoist_dtype_name(t->dtype), shape_tuple(dims, (int)t->ndim),
                       (unsigned long long)t->nbytes, ptr, carrier.name,
                       shape_tuple(carrier_dims, cn), (unsigned long long)t->begin,
                       (unsigned long long)t->end);
}

PyObject *hp_shard_tuple(const hoist_shard_info *s) {
  int64_t dims[64];
  if (s->ndim > 64) {
    PyErr_Format(PyExc_ValueError, "hoist: a tensor of %u dimensions", s->ndim);
    return NULL;
  }
  for (uint32_t k = 0; k < s->ndim; k++) dims[k] = (int64_t)s->global_shape[k];
  return Py_BuildValue("(OIIIKKKN)", s->sharded ? Py_True : Py_False, s->rank, s->world_size,
                       s->dim, (unsigned long long)s->offset, (unsigned long long)s->length,
                       (unsigned long long)s->padded_length, shape_tuple(dims, (int)s->ndim));
}
