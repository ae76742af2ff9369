/* errors.c — a library status as a Python exception.  The class is chosen
 * by hoist._errors (one table, beside the classes); this file passes it the
 * status, the detail message and the load failure's numbers. */
#include "hoist_py.h"

#include <string.h>

static PyObject *from_status; /* hoist._errors._from_status */

int hp_errors_init(void) {
  PyObject *mod = PyImport_ImportModule("hoist._errors");
  if (mod == NULL) return -1;
  from_status = PyObject_GetAttrString(mod, "_from_status");
  Py_DECREF(mod);
  return from_status != NULL ? 0 : -1;
}

PyObject *hp_raise(int status, const char *message, const hoist_load_failure *failure) {
  if (message == NULL || message[0] == '\0') message = hoist_strerror(status);
  /* Messages name files and tensors: never let a stray byte turn the error
   * into a UnicodeDecodeError. */
  PyObject *text = PyUnicode_DecodeUTF8(message, (Py_ssize_t)strlen(message), "replace");
  if (text == NULL) return NULL;
  PyObject *exc;
  const char *name = hoist_status_name(status);
  if (failure != NULL && failure->component[0] != '\0') {
    PyObject *comp = PyUnicode_DecodeUTF8(failure->component,
                                          (Py_ssize_t)strlen(failure->component), "replace");
    exc = comp == NULL ? NULL
                       : PyObject_CallFunction(from_status, "isOOKK", status, name, text, comp,
                                               (unsigned long long)failure->need_bytes,
                                               (unsigned long long)failure->free_bytes);
    Py_XDECREF(comp);
  } else {
    exc = PyObject_CallFunction(from_status, "isO", status, name, text);
  }
  Py_DECREF(text);
  if (exc == NULL) return NULL;
  PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
  Py_DECREF(exc);
  return NULL;
}

PyObject *hp_raise_last(int status, hoist_runtime *rt, const hoist_load_failure *failure) {
  return hp_raise(status, hoist_last_error(rt), failure);
}
