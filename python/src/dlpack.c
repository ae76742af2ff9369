/* dlpack.c — tensors leave hoist as DLPack capsules (the "dltensor"
 * protocol that torch.from_dlpack and numpy.from_dlpack consume), with the
 * structs of the system's dlpack.h.
 *
 * Each export holds its component (hp_hold for a load, the attachment's own
 * hold for an attached one): the capsule, or the consumer once it renamed
 * the capsule "used_dltensor", owns a DLManagedTensor whose deleter drops
 * the hold.  Deleters run on any thread, with or without the
 * GIL, so they touch only C state (core.c).
 *
 * Dtypes that dlpack.h has a code for are exported as themselves.  The
 * others travel as bytes (uint8) and keep their logical dtype in the
 * Python tensor's .dtype: the FP8 kinds (torch: .view(torch.float8_*)),
 * the sub-byte floats F4/F6 (packed bytes: the last dimension becomes its
 * byte count when it divides, else the tensor is flat), and BOOL where the
 * header predates kDLBool (DLPack < 0.8; the bytes are 0 or 1). */
#include "hoist_py.h"

#include <dlpack/dlpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hp_carrier hp_dlpack_carrier(hoist_dtype d) {
  switch (d) {
  case HOIST_DTYPE_U8: return (hp_carrier){kDLUInt, 8, "uint8", 1};
  case HOIST_DTYPE_I8: return (hp_carrier){kDLInt, 8, "int8", 1};
  case HOIST_DTYPE_I16: return (hp_carrier){kDLInt, 16, "int16", 1};
  case HOIST_DTYPE_U16: return (hp_carrier){kDLUInt, 16, "uint16", 1};
  case HOIST_DTYPE_I32: return (hp_carrier){kDLInt, 32, "int32", 1};
  case HOIST_DTYPE_U32: return (hp_carrier){kDLUInt, 32, "uint32", 1};
  case HOIST_DTYPE_I64: return (hp_carrier){kDLInt, 64, "int64", 1};
  case HOIST_DTYPE_U64: return (hp_carrier){kDLUInt, 64, "uint64", 1};
  case HOIST_DTYPE_F16: return (hp_carrier){kDLFloat, 16, "float16", 1};
  case HOIST_DTYPE_BF16: return (hp_carrier){kDLBfloat, 16, "bfloat16", 1};
  case HOIST_DTYPE_F32: return (hp_carrier){kDLFloat, 32, "float32", 1};
  case HOIST_DTYPE_F64: return (hp_carrier){kDLFloat, 64, "float64", 1};
  case HOIST_DTYPE_C64: return (hp_carrier){kDLComplex, 64, "complex64", 1};
#if DLPACK_VERSION >= 80
  case HOIST_DTYPE_BOOL: return (hp_carrier){kDLBool, 8, "bool", 1};
#endif
  default: return (hp_carrier){kDLUInt, 8, "uint8", 0};
  }
}

int hp_carrier_shape(const hoist_tensor_info *t, int64_t *shape) {
  hp_carrier c = hp_dlpack_carrier(t->dtype);
  unsigned bits = hoist_dtype_bits(t->dtype);
  if (c.exact || bits == 8) {
    for (uint32_t k = 0; k < t->ndim; k++) shape[k] = (int64_t)t->shape[k];
    return (int)t->ndim;
  }
  /* Packed sub-byte elements. */
  if (t->ndim > 0 && (t->shape[t->ndim - 1] * bits) % 8 == 0) {
    for (uint32_t k = 0; k + 1 < t->ndim; k++) shape[k] = (int64_t)t->shape[k];
    shape[t->ndim - 1] = (int64_t)(t->shape[t->ndim - 1] * bits / 8);
    return (int)t->ndim;
  }
  shape[0] = (int64_t)t->nbytes;
  return 1;
}

int hp_dlpack_device(const char *device, int *type, int *id) {
  if (strcmp(device, "host") == 0) {
    *type = kDLCPU;
    *id = 0;
    return 0;
  }
  if (strcmp(device, "cuda") == 0) {
    *type = kDLCUDA;
    *id = 0;
    return 0;
  }
  if (strncmp(device, "cuda:", 5) == 0) {
    char *end = NULL;
    long v = strtol(device + 5, &end, 10);
    if (end != device + 5 && *end == '\0' && v >= 0 && v <= 1024) {
      *type = kDLCUDA;
      *id = (int)v;
      return 0;
    }
  }
  PyErr_Format(PyExc_ValueError, "hoist: no DLPack device for '%s'", device);
  return -1;
}

/* A DLManagedTensor with its context and shape/strides in one block. */
typedef struct export_block {
  DLManagedTensor managed;
  void *owner;
  size_t component;
  hp_unhold_fn unhold;
  int64_t dims[]; /* shape[ndim], then strides[ndim] */
} export_block;

static void export_deleter(DLManagedTensor *self) {
  export_block *b = (export_block *)self;
  b->unhold(b->owner, b->component);
  free(b);
}

/* A capsule nobody consumed still owns its tensor. */
static void capsule_destructor(PyObject *capsule) {
  if (!PyCapsule_IsValid(capsule, "dltensor")) return; /* consumed: "used_dltensor" */
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  DLManagedTensor *m = PyCapsule_GetPointer(capsule, "dltensor");
  if (m != NULL && m->deleter != NULL) m->deleter(m);
  PyErr_Restore(type, value, tb);
}

PyObject *hp_dlpack_capsule(const hoist_tensor_info *t, uint64_t addr, const char *device,
                            void *owner, size_t component, hp_unhold_fn unhold) {
  int dev_type, dev_id;
  if (hp_dlpack_device(device, &dev_type, &dev_id) < 0) {
    unhold(owner, component);
    return NULL;
  }
  uint32_t ndim = t->ndim > 0 ? t->ndim : 1;
  export_block *b = malloc(sizeof *b + 2 * (size_t)ndim * sizeof(int64_t));
  if (b == NULL) {
    unhold(owner, component);
    return PyErr_NoMemory();
  }
  hp_carrier c = hp_dlpack_carrier(t->dtype);
  int64_t *shape = b->dims, *strides = b->dims + ndim;
  int nd = hp_carrier_shape(t, shape);
  int64_t stride = 1;
  for (int k = nd - 1; k >= 0; k--) {
    strides[k] = stride;
    stride *= shape[k] > 0 ? shape[k] : 1;
  }
  memset(&b->managed, 0, sizeof b->managed);
  b->managed.dl_tensor.data = (void *)(uintptr_t)addr;
  b->managed.dl_tensor.device.device_type = (DLDeviceType)dev_type;
  b->managed.dl_tensor.device.device_id = dev_id;
  b->managed.dl_tensor.ndim = nd;
  b->managed.dl_tensor.dtype.code = c.code;
  b->managed.dl_tensor.dtype.bits = c.bits;
  b->managed.dl_tensor.dtype.lanes = 1;
  b->managed.dl_tensor.shape = shape;
  b->managed.dl_tensor.strides = strides;
  b->managed.dl_tensor.byte_offset = 0;
  b->managed.manager_ctx = b;
  b->managed.deleter = export_deleter;
  b->owner = owner;
  b->component = component;
  b->unhold = unhold;
  PyObject *capsule = PyCapsule_New(&b->managed, "dltensor", capsule_destructor);
  if (capsule == NULL) export_deleter(&b->managed);
  return capsule;
}

static void loaded_unhold(void *owner, size_t component) { hp_unhold(owner, component); }

PyObject *hp_dlpack_export(hp_loaded *h, size_t i, const char *name) {
  const hoist_loaded_info *ci = hoist_loaded_component(h->l, i);
  uint64_t addr = 0;
  const hoist_tensor_info *t = NULL;
  int rc = hoist_loaded_tensor(h->l, ci->name, name, &addr, &t);
  if (rc == HOIST_UNSUPPORTED) {
    char msg[320];
    snprintf(msg, sizeof msg, "%s: offloaded; call loaded.prepare('%s') before exporting its "
             "tensors", ci->name, ci->name);
    return hp_raise(rc, msg, NULL);
  }
  if (rc != HOIST_OK) return hp_raise_last(rc, h->owner->rt, NULL);
  hp_hold(h, i);
  return hp_dlpack_capsule(t, addr, hoist_loaded_device(h->l), h, i, loaded_unhold);
}
