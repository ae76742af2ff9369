/* module.c — hoist._core, the C half of the hoist Python package: the
 * Runtime, Loaded and Attached types, and the library's version and DLPack
 * facts.
 * Everything user-facing (argument checks, mappings, tensors, adapters)
 * is Python in the hoist package over these. */
#include "hoist_py.h"

#include <dlpack/dlpack.h>

static PyObject *dtype_bits(PyObject *self, PyObject *args) {
  const char *name;
  Py_ssize_t len;
  if (!PyArg_ParseTuple(args, "s#", &name, &len)) return NULL;
  hoist_dtype d;
  if (hoist_dtype_from_name(name, (size_t)len, &d) != HOIST_OK) {
    PyErr_Format(PyExc_ValueError, "hoist: unknown dtype '%s'", name);
    return NULL;
  }
  return PyLong_FromUnsignedLong(hoist_dtype_bits(d));
}

static PyMethodDef module_methods[] = {
    {"dtype_bits", dtype_bits, METH_VARARGS, "dtype_bits(name) -> bits per element"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "hoist._core",
    "libhoist through CPython's stable ABI (see the hoist package).", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

/* The module's entry point, found by name by the import system. */
PyMODINIT_FUNC PyInit__core(void);

PyMODINIT_FUNC PyInit__core(void) {
  PyObject *m = PyModule_Create(&module_def);
  if (m == NULL) return NULL;
  if (hp_errors_init() < 0 || hp_runtime_type_init(m) < 0 || hp_loaded_type_init(m) < 0 ||
      hp_attach_init(m) < 0 ||
      PyModule_AddStringConstant(m, "library_version", hoist_version()) < 0 ||
      PyModule_AddIntConstant(m, "DLPACK_VERSION", DLPACK_VERSION) < 0 ||
      PyModule_AddIntConstant(m, "kDLCPU", kDLCPU) < 0 ||
      PyModule_AddIntConstant(m, "kDLCUDA", kDLCUDA) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
