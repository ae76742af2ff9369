/* hoist_wire.h — the wire protocol of hoist serve's control socket, in one
 * place: the byte format, the message types, the limits, and the encoders
 * and validating decoders both ends use (runtime/share_wire.c).  Not
 * installed: the library's attach client and `hoist serve` (through
 * hoist_tools.h) are its two ends.
 *
 * Transport: a Unix stream socket.  The server checks the peer's uid with
 * SO_PEERCRED before reading anything.
 *
 * Framing: every message is a 16-byte header followed by its payload.
 * Integers are little-endian.
 *
 *   offset  size  field
 *   0       4     magic    'H' 'S' 'R' 'V'
 *   4       2     version  2 (HOIST_WIRE_VERSION; 2 since an all-zero handle
 *                          can mean a CUDA descriptor); a peer that sees another
 *                          version answers ERROR(PROTOCOL) and closes
 *   6       2     type     a HOIST_WIRE_* message type below
 *   8       4     length   payload bytes: at most 4,096 from a client, 64 MiB
 *                          from the server
 *   12      4     id       chosen by the client for a request and echoed in
 *                          its reply; 0 in notices (unsolicited messages)
 *
 * Payload fields, in order, with nothing between them:
 *   u8 u16 u32 u64   little-endian integers
 *   str              u32 n (at most 4,096), then n bytes of UTF-8 with no NUL
 *   handle           64 bytes: all zeros for an arena that travels as a
 *                    descriptor (below); otherwise a CUDA IPC memory handle
 *                    (never all zeros), on a card whose memory is not
 *                    shareable by descriptor
 *
 * Requests (client -> server), replies (server -> client):
 *   ATTACH   u32 flags (bit 0: no-wait)    -> ATTACHED, or ERROR (NOT_READY
 *            when no-wait and loading; the load's status when it failed)
 *   DETACH   (empty)                       -> DETACHED (empty)
 *   PREPARE  str component                 -> PREPARED
 *   RELEASE  str component                 -> RELEASED (empty)
 *   RELOAD   (empty)                       -> RELOADED u32 generation,
 *                                             u64 bytes, u64 microseconds
 *   VERIFY   (empty)                       -> VERIFIED u32 generation,
 *                                             u64 tensors, u64 bytes
 *   any                                    -> ERROR i32 status, str message
 * Notices (id 0): SHUTDOWN u32 drain_seconds; GENERATION u32 generation
 * (a newer load is ready).
 *
 * ATTACHED:
 *   u32 generation (>= 1)
 *   str device     "host" or "cuda"
 *   str locator    cuda: the card's PCI bus id; host: ""
 *   u32 ncomponents (<= 1,024), then per component in load order:
 *     str name (1..255 bytes, unique)
 *     u8  residency (0 resident, 1 offload, 2 fsdp)
 *     u64 bytes, u64 device_bytes, u64 load microseconds
 *     arenas (below)
 *     u32 ntensors (<= 4,194,304), then per tensor:
 *       str name (unique in the component), u8 dtype (hoist_dtype),
 *       u8 ndim (<= 64), u64 shape[ndim], u64 begin, u64 end (the file's
 *       data_offsets), u64 nbytes (on the device: nelements x dtype bits / 8),
 *       u64 span_offset (where it lies in the component's placement span)
 * arenas: u32 narenas (<= 8; 0 for an offloaded component until PREPARE),
 *   then per arena u64 bytes (> 0), handle.  Arena k holds the span from
 *   the sum of the bytes before it; a tensor lies inside one arena.
 * PREPARED: str component, arenas.
 *
 * Descriptors: every arena of an ATTACHED or PREPARED message whose handle
 * is all zeros travels as one descriptor (SCM_RIGHTS), in message order,
 * attached to the message's first byte; at most 253 (SCM_MAX_FD) in one
 * message.  On the host backend (every arena) a memfd, mapped read-only;
 * on cuda, the POSIX handle of a CUDA virtual-memory allocation
 * (cuMemExportToShareableHandle), imported and mapped with read-only
 * access.  A client never sends descriptors.
 *
 * Any violation (bad magic, version, type or length, a field past the
 * payload, bytes left over, a limit exceeded) closes that connection only. */
#ifndef HOIST_WIRE_H
#define HOIST_WIRE_H

#include "hoist.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOIST_WIRE_VERSION 2u
#define HOIST_WIRE_HEADER_BYTES 16u
#define HOIST_WIRE_MAX_REQUEST 4096u
#define HOIST_WIRE_MAX_REPLY (64u << 20)
#define HOIST_WIRE_MAX_STRING 4096u
#define HOIST_WIRE_MAX_NAME 255u
#define HOIST_WIRE_MAX_COMPONENTS 1024u
#define HOIST_WIRE_MAX_TENSORS (1u << 22)
#define HOIST_WIRE_MAX_NDIM 64u
#define HOIST_WIRE_MAX_ARENAS 8u
#define HOIST_WIRE_MAX_FDS 253u
#define HOIST_WIRE_HANDLE_BYTES 64u
#define HOIST_WIRE_FLAG_NO_WAIT 1u

enum {
  HOIST_WIRE_ATTACH = 1,
  HOIST_WIRE_DETACH = 2,
  HOIST_WIRE_PREPARE = 3,
  HOIST_WIRE_RELEASE = 4,
  HOIST_WIRE_RELOAD = 5,
  HOIST_WIRE_VERIFY = 6,
  HOIST_WIRE_ATTACHED = 65,
  HOIST_WIRE_DETACHED = 66,
  HOIST_WIRE_PREPARED = 67,
  HOIST_WIRE_RELEASED = 68,
  HOIST_WIRE_RELOADED = 69,
  HOIST_WIRE_VERIFIED = 70,
  HOIST_WIRE_ERROR = 127,
  HOIST_WIRE_SHUTDOWN = 129,
  HOIST_WIRE_GENERATION = 130
};

typedef struct hoist__wire_header {
  uint16_t type;
  uint32_t length;
  uint32_t id;
} hoist__wire_header;

/* Checks a header's magic, version, type (a request when from_client, else
 * a reply or notice) and length limit.  HOIST_OK, or HOIST_PROTOCOL with
 * why filled. */
int hoist__wire_header_parse(const unsigned char b[HOIST_WIRE_HEADER_BYTES], int from_client,
                            hoist__wire_header *h, char *why, size_t why_size);

/* ---- Writing.  A growable buffer; an allocation failure or a payload over
 * the limit marks it failed and later writes do nothing. */
typedef struct hoist__wbuf {
  unsigned char *data;
  size_t len, cap;
  size_t start;   /* where the open message's header begins */
  int failed;
} hoist__wbuf;

void hoist__wbuf_free(hoist__wbuf *b);
/* Starts a message (reserves its header); hoist__wbuf_end fills the length
 * in.  Returns 0 on success, -1 when the buffer failed. */
void hoist__wbuf_begin(hoist__wbuf *b, uint16_t type, uint32_t id);
int hoist__wbuf_end(hoist__wbuf *b);
void hoist__wbuf_u8(hoist__wbuf *b, uint8_t v);
void hoist__wbuf_u32(hoist__wbuf *b, uint32_t v);
void hoist__wbuf_u64(hoist__wbuf *b, uint64_t v);
void hoist__wbuf_str(hoist__wbuf *b, const char *s);
void hoist__wbuf_bytes(hoist__wbuf *b, const void *p, size_t n);

/* ---- Reading: a cursor over one payload.  Every read checks the bounds;
 * the first failure marks the cursor bad and names the field. */
typedef struct hoist__rbuf {
  const unsigned char *p;
  size_t len, at;
  const char *bad; /* the first field that failed, NULL while good */
} hoist__rbuf;

uint8_t hoist__rbuf_u8(hoist__rbuf *r, const char *field);
uint32_t hoist__rbuf_u32(hoist__rbuf *r, const char *field);
uint64_t hoist__rbuf_u64(hoist__rbuf *r, const char *field);
/* A str of at most max bytes without NUL, copied NUL-terminated into a
 * malloc'd string (*out; NULL on failure). */
char *hoist__rbuf_str(hoist__rbuf *r, uint32_t max, const char *field);
/* n raw bytes into dst. */
void hoist__rbuf_bytes(hoist__rbuf *r, void *dst, size_t n, const char *field);

/* ---- Requests, decoded (server side). */
typedef struct hoist__wire_request {
  uint16_t type;
  uint32_t id;
  uint32_t flags;      /* ATTACH */
  char component[HOIST_WIRE_MAX_NAME + 1]; /* PREPARE, RELEASE */
} hoist__wire_request;

/* Decodes a request payload of header h.  HOIST_PROTOCOL with why. */
int hoist__wire_request_decode(const hoist__wire_header *h, const unsigned char *payload,
                              hoist__wire_request *out, char *why, size_t why_size);

/* ---- The tensor table (ATTACHED) and arena lists (PREPARED), decoded
 * (client side).  Everything is owned by the table. */
typedef struct hoist__wire_arena {
  uint64_t bytes;
  uint64_t span_begin;  /* computed: the bytes of the arenas before it */
  unsigned char handle[HOIST_WIRE_HANDLE_BYTES];
} hoist__wire_arena;

typedef struct hoist__wire_tensor {
  hoist_tensor_info info; /* name and shape owned by the table */
  uint64_t span_off;
} hoist__wire_tensor;

typedef struct hoist__wire_component {
  char *name;
  hoist_residency residency;
  uint64_t bytes, device_bytes, micros;
  uint32_t narenas;
  hoist__wire_arena arenas[HOIST_WIRE_MAX_ARENAS];
  size_t ntensors;
  hoist__wire_tensor *tensors;       /* message order */
  const hoist__wire_tensor **by_name; /* sorted by name (unique) */
  uint64_t span_need;               /* the end of the last tensor */
} hoist__wire_component;

typedef struct hoist__wire_table {
  uint32_t generation;
  char device[8];      /* "host" or "cuda" */
  char locator[32];
  size_t ncomps;
  hoist__wire_component *comps;
} hoist__wire_table;

/* Decodes and validates an ATTACHED payload: limits, unique names, dtype
 * and shape against nbytes, every tensor inside one arena (when the
 * component has arenas).  HOIST_PROTOCOL with why; HOIST_NO_MEMORY. */
int hoist__wire_table_decode(const unsigned char *payload, size_t len, hoist__wire_table **out,
                            char *why, size_t why_size);
void hoist__wire_table_free(hoist__wire_table *t);
/* Whether arena a travels as a descriptor (its handle is all zeros). */
bool hoist__wire_arena_by_fd(const hoist__wire_arena *a);
/* Descriptors the arenas of c come with; of a whole ATTACHED table. */
size_t hoist__wire_component_fds(const hoist__wire_component *c);
size_t hoist__wire_table_fds(const hoist__wire_table *t);

/* Decodes a PREPARED payload into the arenas of component c of t (its name
 * must match) and checks every tensor of c against them. */
int hoist__wire_prepared_decode(const unsigned char *payload, size_t len, hoist__wire_component *c,
                               char *why, size_t why_size);

/* Decodes an ERROR payload: the status (negative, known to hoist) and the
 * message (made one line) into msg. */
int hoist__wire_error_decode(const unsigned char *payload, size_t len, int *status, char *msg,
                            size_t msg_size);

/* ---- Encoding the table: ATTACHED is u32 generation, str device, str
 * locator, u32 ncomponents, then per component hoist__wire_put_component,
 * hoist__wire_put_arenas, u32 ntensors and hoist__wire_put_tensor per
 * tensor. */
void hoist__wire_put_component(hoist__wbuf *b, const char *name, hoist_residency residency,
                              uint64_t bytes, uint64_t device_bytes, uint64_t micros);
void hoist__wire_put_tensor(hoist__wbuf *b, const hoist_tensor_info *t, uint64_t span_off);
/* Writes the arenas field (narenas, then bytes and handle of each). */
void hoist__wire_put_arenas(hoist__wbuf *b, size_t narenas, const uint64_t *bytes,
                           const unsigned char (*handles)[HOIST_WIRE_HANDLE_BYTES]);

/* Finds a tensor of c by exact name; NULL when absent. */
const hoist__wire_tensor *hoist__wire_find(const hoist__wire_component *c, const char *name);

#endif /* HOIST_WIRE_H */
