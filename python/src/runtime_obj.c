/* runtime_obj.c — hoist._core.Runtime: a hoist_runtime (device backend,
 * workers, staging ring), its plan and its loads.  The Python class
 * hoist.Runtime validates arguments and calls these with plain values. */
#include "hoist_py.h"

#include <string.h>

PyObject *hp_runtime_type;

static hp_runtime_obj *self_of(PyObject *o) { return (hp_runtime_obj *)o; }

hp_runtime *hp_runtime_core(PyObject *self) {
  hp_runtime *r = self_of(self)->core;
  if (r == NULL) PyErr_SetString(PyExc_ValueError, "hoist: the Runtime is closed");
  return r;
}

static hp_runtime *open_core(PyObject *self) { return hp_runtime_core(self); }

void hp_patterns_free(const char **patterns, PyObject *keep) {
  Py_XDECREF(keep);
  PyMem_Free((void *)patterns);
}

int hp_patterns(PyObject *seq, const char ***out, PyObject **keep) {
  *out = NULL;
  *keep = NULL;
  if (seq == Py_None) return 0;
  PyObject *items = PySequence_Tuple(seq);
  if (items == NULL) return -1;
  const Py_ssize_t n = PyTuple_Size(items);
  PyObject *bytes = PyTuple_New(n);
  const char **v = PyMem_Calloc((size_t)n + 1, sizeof *v);
  int rc = bytes != NULL && v != NULL ? 0 : -1;
  if (rc < 0 && v == NULL) PyErr_NoMemory();
  for (Py_ssize_t k = 0; k < n && rc == 0; k++) {
    PyObject *item = PyTuple_GetItem(items, k);
    PyObject *b = PyUnicode_Check(item) ? PyUnicode_AsUTF8String(item) : NULL;
    if (b == NULL) {
      if (!PyErr_Occurred())
        PyErr_Format(PyExc_TypeError, "hoist: tensor patterns are str, got %R", item);
      rc = -1;
      break;
    }
    PyTuple_SetItem(bytes, k, b);
    v[k] = PyBytes_AsString(b);
  }
  Py_DECREF(items);
  if (rc < 0) {
    hp_patterns_free(v, bytes);
    return -1;
  }
  *out = v;
  *keep = bytes;
  return 0;
}

static int runtime_init(PyObject *self, PyObject *args, PyObject *kw) {
  static char *names[] = {"device", "capacity", "threads", "chunk", "ring", NULL};
  const char *device = "host";
  unsigned long long capacity = 0, chunk = 0, ring = 0;
  unsigned int threads = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|sKIKK", names, &device, &capacity, &threads,
                                   &chunk, &ring))
    return -1;
  if (self_of(self)->core != NULL) {
    PyErr_SetString(PyExc_RuntimeError, "hoist: Runtime is already initialized");
    return -1;
  }
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.device = device;
  cfg.capacity = capacity;
  cfg.threads = threads;
  cfg.chunk_bytes = chunk;
  cfg.ring_bytes = ring;
  hp_runtime *r = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = hp_runtime_new(&cfg, &r);
  Py_END_ALLOW_THREADS
  if (rc != HOIST_OK) {
    /* The detail of a failed create is the calling thread's. */
    hp_raise(rc, rc == HOIST_NO_MEMORY ? NULL : hoist_last_error(NULL), NULL);
    return -1;
  }
  self_of(self)->core = r;
  snprintf(self_of(self)->device, sizeof self_of(self)->device, "%s", device);
  return 0;
}

static void runtime_dealloc(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  hp_runtime_unref(self_of(self)->core);
  freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
  tp_free(self);
  Py_DECREF(tp);
}

static PyObject *runtime_close(PyObject *self, PyObject *unused) {
  hp_runtime *r = self_of(self)->core;
  self_of(self)->core = NULL;
  /* Loads made with it keep the runtime until they close. */
  hp_runtime_unref(r);
  Py_RETURN_NONE;
}

static PyObject *runtime_closed(PyObject *self, void *unused) {
  return PyBool_FromLong(self_of(self)->core == NULL);
}

static PyObject *runtime_device(PyObject *self, void *unused) {
  return PyUnicode_FromString(self_of(self)->device);
}

/* str or None for a nullable library string. */
static PyObject *str_or_none(const char *s) {
  if (s == NULL) Py_RETURN_NONE;
  return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

static PyObject *component_dict(const hoist_component_info *c) {
  PyObject *files = PyList_New((Py_ssize_t)c->file_count);
  if (files == NULL) return NULL;
  for (size_t k = 0; k < c->file_count; k++) {
    PyObject *f = str_or_none(c->files[k]);
    if (f == NULL) {
      Py_DECREF(files);
      return NULL;
    }
    PyList_SetItem(files, (Py_ssize_t)k, f);
  }
  PyObject *inferred =
      c->has_size ? PyLong_FromUnsignedLongLong(c->inferred_bytes) : (Py_INCREF(Py_None), Py_None);
  PyObject *d = Py_BuildValue(
      "{s:N,s:N,s:N,s:N,s:I,s:N,s:O,s:N,s:i,s:L,s:n,s:N,s:n}", "name", str_or_none(c->name),
      "load_name", str_or_none(c->load_name), "library", str_or_none(c->library), "class",
      str_or_none(c->class_name), "index", c->index, "path", str_or_none(c->path),
      "folder_missing", c->folder_missing ? Py_True : Py_False, "inferred_bytes", inferred,
      "risk_rank", c->risk_rank, "variant_priority", (long long)c->variant_priority, "position",
      (Py_ssize_t)c->position, "files", files, "tensor_count", (Py_ssize_t)c->tensor_count);
  return d;
}

/* plan(path, variant, dtype) -> (components in index order, names in load
 * order).  Headers only. */
static PyObject *runtime_plan(PyObject *self, PyObject *args) {
  const char *path, *variant = NULL, *dtype = NULL;
  if (!PyArg_ParseTuple(args, "s|zz", &path, &variant, &dtype)) return NULL;
  hp_runtime *r = open_core(self);
  if (r == NULL) return NULL;
  hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
  po.variant = variant;
  po.dtype = dtype;
  hoist_pipeline *p = NULL;
  int rc;
  hp_runtime_ref(r);
  Py_BEGIN_ALLOW_THREADS
  rc = hoist_pipeline_open(r->rt, path, &po, &p);
  Py_END_ALLOW_THREADS
  PyObject *comps = NULL, *order = NULL, *result = NULL;
  if (rc != HOIST_OK) {
    hp_raise_last(rc, r->rt, NULL);
    goto done;
  }
  size_t n = hoist_pipeline_component_count(p);
  comps = PyList_New((Py_ssize_t)n);
  order = PyList_New((Py_ssize_t)n);
  if (comps == NULL || order == NULL) goto done;
  for (size_t i = 0; i < n; i++) {
    PyObject *d = component_dict(hoist_pipeline_component(p, i));
    PyObject *name = str_or_none(hoist_pipeline_ordered(p, i)->name);
    if (d == NULL || name == NULL) {
      Py_XDECREF(d);
      Py_XDECREF(name);
      goto done;
    }
    PyList_SetItem(comps, (Py_ssize_t)i, d);
    PyList_SetItem(order, (Py_ssize_t)i, name);
  }
  result = Py_BuildValue("(OO)", comps, order);
done:
  Py_XDECREF(comps);
  Py_XDECREF(order);
  hoist_pipeline_close(p);
  hp_runtime_unref(r);
  return result;
}

/* load(path, variant, dtype, dtype_for, offload, fsdp, headroom, on_oom,
 * verify, read, scratch, progress, patterns, filter, shard, rank, world_size,
 * rendezvous, group_timeout) -> hoist._core.Loaded; patterns: a tuple of
 * str or None, filter: a callable or None; world_size 0: a load alone. */
static PyObject *runtime_load(PyObject *self, PyObject *args) {
  const char *path, *variant, *dtype, *dtype_for, *offload, *fsdp, *shard, *rendezvous;
  long long headroom;
  int on_oom, verify, read_mode, rank, world_size;
  unsigned long long scratch;
  double group_timeout;
  PyObject *progress, *patterns, *filter;
  if (!PyArg_ParseTuple(args, "szzzzzLipiKOOOziizd", &path, &variant, &dtype, &dtype_for,
                        &offload, &fsdp, &headroom, &on_oom, &verify, &read_mode, &scratch,
                        &progress, &patterns, &filter, &shard, &rank, &world_size, &rendezvous,
                        &group_timeout))
    return NULL;
  hp_runtime *r = open_core(self);
  if (r == NULL) return NULL;
  const char **globs = NULL;
  PyObject *keep = NULL;
  if (hp_patterns(patterns, &globs, &keep) < 0) return NULL;
  hoist_pipeline_options po = HOIST_PIPELINE_OPTIONS_INIT;
  po.variant = variant;
  po.dtype = dtype; /* order by the bytes that will land, as the CLI does */
  hoist_load_options lo = HOIST_LOAD_OPTIONS_INIT;
  lo.dtype = dtype;
  lo.dtype_for = dtype_for;
  lo.offload = offload;
  lo.fsdp = fsdp;
  lo.headroom = headroom;
  lo.on_oom = (hoist_on_oom)on_oom;
  lo.verify = verify;
  lo.read_mode = (hoist_read_mode)read_mode;
  lo.scratch_bytes = scratch;
  lo.tensors = globs;
  lo.shard = shard;
  hoist_group_options go = HOIST_GROUP_OPTIONS_INIT;
  go.rank = rank;
  go.world_size = world_size;
  go.rendezvous = rendezvous;
  go.timeout_seconds = group_timeout;
  PyObject *loaded = hp_load_run(r, path, &po, &lo, world_size > 0 ? &go : NULL, progress, filter);
  hp_patterns_free(globs, keep);
  return loaded;
}

/* mem_info() -> (free_bytes, total_bytes) of the device now. */
static PyObject *runtime_mem_info(PyObject *self, PyObject *unused) {
  hp_runtime *r = open_core(self);
  if (r == NULL) return NULL;
  uint64_t free_b = 0, total_b = 0;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = hoist_runtime_mem_info(r->rt, &free_b, &total_b);
  Py_END_ALLOW_THREADS
  if (rc != HOIST_OK) return hp_raise_last(rc, r->rt, NULL);
  return Py_BuildValue("(KK)", (unsigned long long)free_b, (unsigned long long)total_b);
}

/* take_log() -> ([(level, text), ..], dropped) */
static PyObject *runtime_take_log(PyObject *self, PyObject *unused) {
  hp_runtime *r = self_of(self)->core;
  if (r == NULL) return Py_BuildValue("([]n)", (Py_ssize_t)0);
  hp_log_line *lines;
  size_t n, dropped;
  hp_runtime_take_log(r, &lines, &n, &dropped);
  PyObject *list = PyList_New(0);
  for (size_t k = 0; k < n; k++) {
    if (list != NULL) {
      PyObject *item = Py_BuildValue("(iN)", lines[k].level,
                                     str_or_none(lines[k].text));
      if (item == NULL || PyList_Append(list, item) < 0) Py_CLEAR(list);
      Py_XDECREF(item);
    }
    free(lines[k].text);
  }
  free(lines);
  if (list == NULL) return NULL;
  return Py_BuildValue("(Nn)", list, (Py_ssize_t)dropped);
}

static PyMethodDef runtime_methods[] = {
    {"close", runtime_close, METH_NOARGS, "Drops the runtime (closed when its loads are)."},
    {"plan", runtime_plan, METH_VARARGS, "plan(path, variant, dtype) -> (components, order)"},
    {"load", runtime_load, METH_VARARGS, "load(path, ...) -> Loaded"},
    {"load_into", hp_runtime_load_into, METH_VARARGS,
     "load_into(path, component, targets, strict, patterns, filter, verify, read, progress) "
     "-> (missing, unexpected)"},
    {"mem_info", runtime_mem_info, METH_NOARGS, "mem_info() -> (free_bytes, total_bytes)"},
    {"take_log", runtime_take_log, METH_NOARGS, "take_log() -> (lines, dropped)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef runtime_getset[] = {
    {"closed", runtime_closed, NULL, "True once close() ran", NULL},
    {"device", runtime_device, NULL, "the device name", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot runtime_slots[] = {
    {Py_tp_init, (void *)runtime_init},
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)runtime_dealloc},
    {Py_tp_methods, runtime_methods},
    {Py_tp_getset, runtime_getset},
    {Py_tp_doc, (void *)"Runtime(device='host', capacity=0, threads=0, chunk=0, ring=0)"},
    {0, NULL},
};

static PyType_Spec runtime_spec = {"hoist._core.Runtime", sizeof(hp_runtime_obj), 0,
                                   Py_TPFLAGS_DEFAULT, runtime_slots};

int hp_runtime_type_init(PyObject *module) {
  hp_runtime_type = PyType_FromSpec(&runtime_spec);
  if (hp_runtime_type == NULL) return -1;
  Py_INCREF(hp_runtime_type);
  if (PyModule_AddObject(module, "Runtime", hp_runtime_type) < 0) {
    Py_DECREF(hp_runtime_type);
    return -1;
  }
  return 0;
}
