/* engine.c — the upload engine.
 *
 * A job is a list of chunks in issue order (largest tensors first).  Reader
 * threads take the next chunk from an atomic counter, fill one of their two
 * pinned ring slots from the file (memcpy from the mapping when its pages
 * are cached, pread or O_DIRECT when not), and issue cudaMemcpyAsync on
 * their own stream; an event per slot tells when the slot may be refilled.
 * Chunks of a few MiB stay in the CPU caches between the read and the copy,
 * and enough readers keep enough copies in flight to fill the link; 4 MiB
 * chunks and about three readers for every four cores reached the highest
 * rates (bench/RESULTS.md), so those are the defaults.
 *
 * A chunk that converts is copied into a chunk-sized slot of the device
 * scratch, taken from a pool the readers share, and converted later, on
 * the reader's second stream: when the reader comes back to its pinned slot
 * it has waited for that copy anyway, so it launches the conversion then
 * and gives the scratch slot back; the next copy into it waits for the
 * conversion on the device.  The copy streams so hold copies only, as in a
 * plain load: a kernel that waits on the device for a copy in flight (on
 * the copy's stream, the obvious design, or through an event) slows the
 * copies down, an empty kernel as much as a conversion, and the more so the
 * smaller the slots (bench/RESULTS.md, "Conversion and verification during
 * the load").  A reader that finds the pool empty first converts the other
 * chunk it holds, so a waiting reader holds no slot and one slot is enough
 * for progress.
 *
 * The engine (threads' streams, events and slots) is made once per runtime
 * and reused: pinning memory costs about a second per GB.  How bytes leave
 * a file is file_read.c's; the chunk list comes from job.c; docs/design.md
 * draws the whole path. */
#include "engine.h"

#include "checksum_host.h"
#include "convert_ref.h"
#include "kernels.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOTS_PER_THREAD 2
#define DEFAULT_CHUNK (4u << 20)
#define MAX_THREADS 64

#define NO_CHUNK SIZE_MAX

typedef struct engine_worker {
  struct hoist__engine *engine;
  unsigned id;
  void *stream;                   /* copies (and waits for conversions) */
  void *events[SLOTS_PER_THREAD]; /* after slot k's last copy */
  unsigned char *slots[SLOTS_PER_THREAD];
  int pending[SLOTS_PER_THREAD];
  /* Deferred conversion: convert_stream runs the kernels (made by the
   * first job that converts on the device); held[k] is the chunk copied
   * from pinned slot k that waits in scratch slot held_slot[k] for its
   * conversion (NO_CHUNK: none). */
  void *convert_stream;
  size_t held[SLOTS_PER_THREAD];
  unsigned held_slot[SLOTS_PER_THREAD];
  uint64_t waited_ns;       /* time spent waiting for this thread's copies */
  uint64_t scratch_waits;   /* times it found the scratch pool empty */
  uint64_t scratch_wait_ns; /* time from then until it had a slot */
  uv_thread_t thread;
  int status;
} engine_worker;

struct hoist__engine {
  hoist_runtime *rt;
  hoist__device *dev;
  unsigned threads;
  uint64_t chunk;
  uint64_t slot_bytes; /* chunk + O_DIRECT slack */
  unsigned char *ring; /* one pinned allocation, cut into slots */
  uint64_t ring_bytes;
  engine_worker workers[MAX_THREADS];
  /* Per-run state. */
  upload_job *job;
  atomic_size_t next;
  atomic_uint_fast64_t done;
  atomic_int failed;
  uv_mutex_t progress_lock;
  uint64_t reported; /* last done value given to the progress callback */
  int first_status;  /* first worker failure of the run (under progress_lock) */
  char first_msg[HOIST_ERROR_MAX];
  /* The scratch pool of a run (job->scratch_slots slots): the ids free now
   * (under pool_lock; pool_cond is signalled when one is given back or the
   * run fails), and per slot the event recorded after the last work that
   * used it (its conversion, or a dropped chunk's copy), which the next
   * copy into it waits for.  Made with the conversion streams. */
  uv_mutex_t pool_lock;
  uv_cond_t pool_cond;
  unsigned pool_free[MAX_THREADS * SLOTS_PER_THREAD];
  unsigned pool_nfree;
  void *pool_events[MAX_THREADS * SLOTS_PER_THREAD];
};

/* About three reader threads for every four cores, at most 12: more
 * readers keep more copies in flight until the link is full, and past that
 * they only contend for the cores (bench/RESULTS.md). */
unsigned hoist__engine_default_threads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 2) return 1;
  unsigned t = (unsigned)(n * 3 / 4);
  return t > 12 ? 12 : t;
}

void hoist__engine_destroy(hoist__engine *e) {
  if (e == NULL) return;
  for (unsigned i = 0; i < e->threads; i++) {
    engine_worker *w = &e->workers[i];
    for (int s = 0; s < SLOTS_PER_THREAD; s++) {
      if (w->events[s] != NULL) e->dev->ops->event_destroy(e->dev, w->events[s]);
      void *pe = e->pool_events[i * SLOTS_PER_THREAD + s];
      if (pe != NULL) e->dev->ops->event_destroy(e->dev, pe);
    }
    if (w->stream != NULL) e->dev->ops->stream_destroy(e->dev, w->stream);
    if (w->convert_stream != NULL) e->dev->ops->stream_destroy(e->dev, w->convert_stream);
  }
  if (e->ring != NULL) e->dev->ops->pinned_free(e->dev, e->ring);
  uv_cond_destroy(&e->pool_cond);
  uv_mutex_destroy(&e->pool_lock);
  uv_mutex_destroy(&e->progress_lock);
  free(e);
}

int hoist__engine_get(hoist_runtime *rt, hoist__engine **out) {
  if (rt->engine != NULL) {
    *out = rt->engine;
    return HOIST_OK;
  }
  hoist__device *dev = rt->dev;
  unsigned threads = rt->cfg.threads != 0 ? rt->cfg.threads : hoist__engine_default_threads();
  uint64_t chunk = rt->cfg.chunk_bytes != 0 ? rt->cfg.chunk_bytes : DEFAULT_CHUNK;
  uint64_t ring_max = rt->cfg.ring_bytes != 0 ? rt->cfg.ring_bytes : (256u << 20);
  if (threads > MAX_THREADS)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "threads %u: at most %d", threads, MAX_THREADS);
  if (chunk < 4096 || chunk > (1u << 30) || (chunk & 4095) != 0)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                      "chunk %llu bytes: must be a multiple of 4096 in [4 KiB, 1 GiB]",
                      (unsigned long long)chunk);
  uint64_t slot_bytes = chunk + 2 * HOIST_DIRECT_ALIGN;
  uint64_t ring = slot_bytes * SLOTS_PER_THREAD * threads;
  uint64_t slack = 2ull * HOIST_DIRECT_ALIGN * SLOTS_PER_THREAD * threads;
  if (ring - slack > ring_max)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT,
                      "%u threads x %d slots x %llu-byte chunks need %llu bytes of pinned "
                      "ring, above the %llu-byte limit",
                      threads, SLOTS_PER_THREAD, (unsigned long long)chunk,
                      (unsigned long long)ring, (unsigned long long)ring_max);
  hoist__engine *e = calloc(1, sizeof *e);
  if (e == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory for the upload engine");
  e->rt = rt;
  e->dev = dev;
  e->threads = threads;
  e->chunk = chunk;
  e->slot_bytes = slot_bytes;
  e->ring_bytes = ring;
  int rc = HOIST_OK;
  /* The locks before anything hoist__engine_destroy frees (it destroys them). */
  const bool progress_ok = uv_mutex_init(&e->progress_lock) == 0;
  const bool pool_ok = progress_ok && uv_mutex_init(&e->pool_lock) == 0;
  if (!pool_ok || uv_cond_init(&e->pool_cond) != 0) {
    if (pool_ok) uv_mutex_destroy(&e->pool_lock);
    if (progress_ok) uv_mutex_destroy(&e->progress_lock);
    free(e);
    return hoist__fail(rt, HOIST_NO_MEMORY, "cannot create the upload engine's locks");
  }
  rc = dev->ops->pinned_alloc(dev, (size_t)ring, (void **)&e->ring);
  if (rc != HOIST_OK) goto fail;
  for (unsigned i = 0; i < threads; i++) {
    engine_worker *w = &e->workers[i];
    w->engine = e;
    w->id = i;
    rc = dev->ops->stream_create(dev, &w->stream);
    if (rc != HOIST_OK) goto fail;
    for (int s = 0; s < SLOTS_PER_THREAD; s++) {
      w->held[s] = NO_CHUNK;
      rc = dev->ops->event_create(dev, &w->events[s]);
      if (rc != HOIST_OK) goto fail;
      /* Slots start O_DIRECT-aligned: slot_bytes is a multiple of 4096. */
      w->slots[s] = e->ring + ((uint64_t)i * SLOTS_PER_THREAD + (uint64_t)s) * slot_bytes;
    }
  }
  rt->engine = e;
  *out = e;
  hoist__log(rt, HOIST_LOG_INFO, "upload engine: %u threads, %llu-byte chunks, %llu bytes pinned",
            threads, (unsigned long long)chunk, (unsigned long long)ring);
  return HOIST_OK;
fail:
  hoist__engine_destroy(e);
  return rc;
}

int hoist__engine_prepare(hoist_runtime *rt) {
  hoist__engine *e = NULL;
  uv_mutex_lock(&rt->load_lock);
  int rc = hoist__engine_get(rt, &e);
  uv_mutex_unlock(&rt->load_lock);
  return rc;
}

uint64_t hoist__engine_chunk_bytes(const hoist__engine *e) { return e->chunk; }
uint64_t hoist__engine_pinned_bytes(const hoist__engine *e) { return e->ring_bytes; }

/* ---- workers */

/* Counts add bytes of chunk c as issued, for the job or for c's part, and
 * calls the progress callback at most once per 1/200 of a component, so
 * callbacks stay cheap. */
static void report_progress(hoist__engine *e, const upload_chunk *c, uint64_t add) {
  upload_job *job = e->job;
  upload_part *part = job->parts != NULL ? &job->parts[c->part] : NULL;
  atomic_uint_fast64_t *counter = part != NULL ? &part->done : &e->done;
  uint64_t *reported = part != NULL ? &part->reported : &e->reported;
  const uint64_t total = part != NULL ? part->total_bytes : job->total_bytes;
  uint64_t before = atomic_fetch_add(counter, add);
  if (job->progress == NULL || total == 0) return;
  uint64_t after = before + add;
  uint64_t step = total / 200 + 1;
  if (before / step == after / step && after < total) return;
  uv_mutex_lock(&e->progress_lock);
  /* Re-read under the lock so callers see done rise monotonically. */
  uint64_t done = atomic_load(counter);
  if (done > total) done = total;
  if (done > *reported) {
    *reported = done;
    job->progress(job->progress_user, part != NULL ? part->component : job->component, done,
                  total);
  }
  uv_mutex_unlock(&e->progress_lock);
}

/* Stamps the time the first chunk of c's part was taken (pipelined loads
 * time each component from it). */
static void note_part_start(upload_job *job, const upload_chunk *c) {
  if (job->parts == NULL) return;
  upload_part *part = &job->parts[c->part];
  uint_fast64_t none = 0;
  if (atomic_load_explicit(&part->started_ns, memory_order_relaxed) == 0)
    atomic_compare_exchange_strong(&part->started_ns, &none, uv_hrtime());
}

/* Reads every segment of chunk c into slot at its slot offset and zeroes
 * the gaps between them, so the span copied (and hashed, and converted) is
 * the same bytes on every run. */
static int gather_chunk(hoist__engine *e, const upload_chunk *c, unsigned char *slot) {
  upload_job *job = e->job;
  const upload_segment *seg = &job->segs[c->first_seg];
  uint64_t end = 0;
  for (uint32_t k = 0; k < c->nseg; k++) {
    if (seg[k].slot_off > end) memset(slot + end, 0, (size_t)(seg[k].slot_off - end));
    int rc = hoist__upload_read(e->rt, &job->files[seg[k].file], seg[k].file_off, slot + seg[k].slot_off,
                         (size_t)seg[k].len);
    if (rc != HOIST_OK) return rc;
    end = seg[k].slot_off + seg[k].len;
  }
  return HOIST_OK;
}

/* Fills slot with chunk c (or points *src at its bytes elsewhere).  When
 * hash is not NULL (hoist_load_options.verify) and the chunk is one segment copied from a
 * file mapping, the copy also hashes it in the same pass and *hash is set
 * to hoist__upload_chunk_hash of the chunk; *hashed says whether that happened
 * (otherwise the caller hashes *src). */
static int fill_chunk(hoist__engine *e, engine_worker *w, const upload_chunk *c, unsigned char *slot,
                      const unsigned char **src, uint64_t *hash, int *hashed) {
  upload_job *job = e->job;
  const upload_segment *seg = &job->segs[c->first_seg];
  *hashed = 0;
  /* A single-segment chunk of a REGISTER or DIRECT file needs no copy or an
   * aligned read; everything else is gathered into the slot. */
  if (c->nseg == 1 && seg->slot_off == 0) {
    const upload_file *uf = &job->files[seg->file];
    /* Zero-copy from the page-locked mapping; with verify on the bytes go
     * through the slot instead, where the host hash reads them under the
     * SIGBUS guard, and with a content check too, so that the copy sends
     * exactly the bytes the check read. */
    if (uf->mode == HOIST_READ_REGISTER && uf->registered && !job->verify && job->check == NULL) {
      *src = uf->map + seg->file_off;
      return HOIST_OK;
    }
    if (uf->mode == HOIST_READ_DIRECT && !job->to_host) {
      unsigned char *data = NULL;
      int rc = hoist__upload_read_direct(e->rt, uf, seg->file_off, (size_t)seg->len, slot, &data);
      *src = data;
      return rc;
    }
    /* Warm loads with verify on (and registered files, which verify reads
     * through the slot): one pass over the mapping copies and hashes (a
     * single segment at slot offset 0 is the whole chunk, so the chunk's
     * blocks start where the segment does). */
    if (hash != NULL && (uf->mode == HOIST_READ_MMAP || uf->mode == HOIST_READ_REGISTER) &&
        uf->map != NULL && seg->len == c->len) {
      int rc = hoist__guarded_copy(slot, uf->map + seg->file_off, (size_t)seg->len, hash);
      if (rc != HOIST_OK)
        return hoist__fail(e->rt, rc,
                          "%s: file shrank under its mapping at offset %llu during the load",
                          hoist_file_path(uf->file), (unsigned long long)seg->file_off);
      *hashed = 1;
      *src = slot;
      return HOIST_OK;
    }
  }
  *src = slot;
  return gather_chunk(e, c, slot);
}

/* The readers' hash: the add-only block sums in their fastest SIMD form
 * for this CPU (checksum_host.c), so hashing a chunk costs about as much as
 * reading it once more from the core's caches. */
uint64_t hoist__upload_chunk_hash(const void *bytes, uint64_t n) {
  return hoist__ck_copy_hash(HOIST_CK_IMPL_BEST, NULL, bytes, n);
}

/* A chunk of a host job (offload copy): read straight into the pinned host
 * copy, or, when it converts, into the worker's slot and converted from
 * there with the CPU reference. */
static int host_chunk(hoist__engine *e, engine_worker *w, upload_chunk *c, unsigned k) {
  upload_job *job = e->job;
  unsigned char *dst = (unsigned char *)(uintptr_t)c->dst;
  int rc = HOIST_OK;
  if (c->from == c->to) {
    rc = gather_chunk(e, c, dst); /* the host copy has the slot's layout */
    if (rc == HOIST_OK && job->check != NULL) rc = job->check(job->check_user, job, c, dst);
  } else {
    rc = gather_chunk(e, c, w->slots[k]);
    /* The source bytes are checked, before they are converted. */
    if (rc == HOIST_OK && job->check != NULL &&
        (rc = job->check(job->check_user, job, c, w->slots[k])) != HOIST_OK)
      return rc;
    if (rc == HOIST_OK)
      rc = hoist__convert_ref(dst, c->to, w->slots[k], c->from,
                             c->len / (hoist_dtype_bits(c->from) / 8));
    if (rc != HOIST_OK && rc != HOIST_FILE_CHANGED && rc != HOIST_IO)
      rc = hoist__fail(e->rt, rc, "%s: converting a chunk %s -> %s on the host failed",
                      job->component, hoist_dtype_name(c->from), hoist_dtype_name(c->to));
  }
  /* Host copies are checked where they lie: the hash of what was written. */
  if (rc == HOIST_OK && job->verify) c->host_hash = hoist__upload_chunk_hash(dst, c->dst_len);
  return rc;
}

/* Device address of scratch slot `slot` of the job's pool. */
static uint64_t scratch_addr(const upload_job *job, unsigned slot) {
  return job->scratch + (uint64_t)slot * job->scratch_slot;
}

/* Gives a scratch slot back to the pool. */
static void scratch_release(hoist__engine *e, unsigned slot) {
  uv_mutex_lock(&e->pool_lock);
  e->pool_free[e->pool_nfree++] = slot;
  uv_cond_signal(&e->pool_cond);
  uv_mutex_unlock(&e->pool_lock);
}

/* Gives a scratch slot back once everything queued on stream so far (the
 * work that reads or writes the slot) is behind the slot's event, which the
 * next copy into it waits for; if the event cannot be recorded, waits for
 * the stream instead.  Returns the record's status. */
static int scratch_release_after(hoist__engine *e, unsigned slot, void *stream) {
  hoist__device *dev = e->dev;
  int rc = dev->ops->event_record(dev, e->pool_events[slot], stream);
  if (rc != HOIST_OK) (void)dev->ops->stream_sync(dev, stream);
  scratch_release(e, slot);
  return rc;
}

/* Launches, on w's conversion stream, the conversion of the chunk copied
 * from pinned slot k, whose copy has finished (the caller waited for it):
 * hash the source in the scratch (verify on; the device then hashed exactly
 * the bytes the host hashed), convert into the arena, hash the output.
 * Then gives the scratch slot back behind the slot's event (also when a
 * launch failed: the kernels already queued may still read it). */
static int convert_held(hoist__engine *e, engine_worker *w, unsigned k) {
  hoist__device *dev = e->dev;
  upload_job *job = e->job;
  const size_t i = w->held[k];
  const unsigned slot = w->held_slot[k];
  const upload_chunk *c = &job->chunks[i];
  const uint64_t scratch = scratch_addr(job, slot);
  void *s = w->convert_stream;
  w->held[k] = NO_CHUNK;
  int rc = HOIST_OK;
  if (job->verify)
    rc = dev->ops->checksum(dev, scratch, c->len, job->dev_hashes + 8 * (uint64_t)i, s);
  if (rc == HOIST_OK)
    rc = dev->ops->convert(dev, c->dst, c->to, scratch, c->from,
                           c->len / (hoist_dtype_bits(c->from) / 8), s);
  if (rc == HOIST_OK && job->verify)
    rc = dev->ops->checksum(dev, c->dst, c->dst_len,
                            job->dev_hashes + 8 * (job->hash_stride + (uint64_t)i), s);
  int rrc = scratch_release_after(e, slot, s);
  return rc != HOIST_OK ? rc : rrc;
}

/* Waits for the copy from pinned slot k, then converts the chunk it brought
 * (convert_held). */
static int convert_when_copied(hoist__engine *e, engine_worker *w, unsigned k) {
  int rc = e->dev->ops->event_sync(e->dev, w->events[k]);
  return rc == HOIST_OK ? convert_held(e, w, k) : rc;
}

/* Takes a scratch slot for the chunk about to be copied from pinned slot k
 * and queues, on w's copy stream, a wait for the slot's last conversion.
 * With the pool empty, w first converts the chunk of its other pinned slot
 * (waiting for that copy), so no waiting reader holds a slot; then it
 * waits for one to come back.  HOIST_CANCELLED when the run failed
 * meanwhile (the first failure keeps its own status). */
static int scratch_acquire(hoist__engine *e, engine_worker *w, unsigned k, unsigned *slot) {
  hoist__device *dev = e->dev;
  const unsigned other = (k + 1) % SLOTS_PER_THREAD;
  uint64_t t0 = 0;
  bool got = false;
  int rc = HOIST_OK;
  for (;;) {
    uv_mutex_lock(&e->pool_lock);
    if (e->pool_nfree == 0 && t0 == 0) {
      t0 = uv_hrtime();
      w->scratch_waits++;
    }
    while (e->pool_nfree == 0 && w->held[other] == NO_CHUNK && !atomic_load(&e->failed))
      uv_cond_wait(&e->pool_cond, &e->pool_lock);
    got = e->pool_nfree > 0;
    if (got) *slot = e->pool_free[--e->pool_nfree];
    uv_mutex_unlock(&e->pool_lock);
    if (got || atomic_load(&e->failed)) break;
    if ((rc = convert_when_copied(e, w, other)) != HOIST_OK) break;
  }
  if (t0 != 0) w->scratch_wait_ns += uv_hrtime() - t0;
  if (rc != HOIST_OK) return rc;
  if (!got) return HOIST_CANCELLED;
  rc = dev->ops->stream_wait_event(dev, w->stream, e->pool_events[*slot]);
  if (rc != HOIST_OK) scratch_release(e, *slot); /* nothing of ours touches it yet */
  return rc;
}

/* The first failure wins: its status and the failing reader's own message,
 * even if readers stopping after it record theirs later.  The message is
 * copied now because it lives in this thread's error slot, which the
 * loading thread cannot read. */
static void engine_note_failure(hoist__engine *e, int rc) {
  uv_mutex_lock(&e->progress_lock);
  if (e->first_status == HOIST_OK) {
    e->first_status = rc;
    snprintf(e->first_msg, sizeof e->first_msg, "%s", hoist__thread_last_error());
  }
  uv_mutex_unlock(&e->progress_lock);
}

static void worker_main(void *arg) {
  engine_worker *w = arg;
  hoist__engine *e = w->engine;
  hoist__device *dev = e->dev;
  upload_job *job = e->job;
  unsigned k = 0;
  int rc = HOIST_OK;
  for (;;) {
    if (atomic_load(&e->failed)) break;
    if (hoist__cancel_requested(job->cancel)) {
      rc = hoist__fail(e->rt, HOIST_CANCELLED, "%s: load cancelled", job->component);
      break;
    }
    size_t i = atomic_fetch_add(&e->next, 1);
    if (i >= job->nchunks) break;
    upload_chunk *c = &job->chunks[i];
    note_part_start(job, c);
    uint64_t tensor_bytes = 0;
    for (uint32_t s = 0; s < c->nseg; s++) tensor_bytes += job->segs[c->first_seg + s].len;
    if (job->to_host) {
      rc = host_chunk(e, w, c, k);
      if (rc != HOIST_OK) break;
      report_progress(e, c, tensor_bytes);
      continue;
    }
    if (w->pending[k]) {
      uint64_t t0 = uv_hrtime();
      rc = dev->ops->event_sync(dev, w->events[k]);
      w->waited_ns += uv_hrtime() - t0;
      if (rc != HOIST_OK) break;
      w->pending[k] = 0;
    }
    if (w->held[k] != NO_CHUNK && (rc = convert_held(e, w, k)) != HOIST_OK) break;
    const unsigned char *src = NULL;
    int hashed = 0;
    rc = fill_chunk(e, w, c, w->slots[k], &src, job->verify ? &c->host_hash : NULL, &hashed);
    if (rc != HOIST_OK) break;
    /* Not hashed while copied (pread, O_DIRECT, several segments): the
     * bytes just read are still in this core's caches. */
    if (job->verify && !hashed) c->host_hash = hoist__upload_chunk_hash(src, c->len);
    if (job->check != NULL && (rc = job->check(job->check_user, job, c, src)) != HOIST_OK) break;
    /* A converted chunk goes into a scratch slot of the pool and is
     * converted when the reader is back at pinned slot k (convert_held). */
    const bool converts = c->from != c->to;
    unsigned slot = 0;
    if (converts && (rc = scratch_acquire(e, w, k, &slot)) != HOIST_OK) break;
    rc = dev->ops->copy_h2d_async(dev, converts ? scratch_addr(job, slot) : c->dst, src,
                                  (size_t)c->len, w->stream);
    if (converts) {
      w->held[k] = i; /* given back by convert_held, or at the end if the run fails */
      w->held_slot[k] = slot;
    }
    if (rc == HOIST_OK) rc = dev->ops->event_record(dev, w->events[k], w->stream);
    if (rc != HOIST_OK) break;
    w->pending[k] = 1;
    k = (k + 1) % SLOTS_PER_THREAD;
    report_progress(e, c, tensor_bytes);
  }
  /* The chunks still in the scratch, oldest first: converted unless the
   * run failed (then dropped, their slots given back). */
  for (unsigned n = 0; n < SLOTS_PER_THREAD; n++, k = (k + 1) % SLOTS_PER_THREAD) {
    if (w->held[k] == NO_CHUNK) continue;
    if (rc == HOIST_OK && !atomic_load(&e->failed)) rc = convert_when_copied(e, w, k);
    if (w->held[k] != NO_CHUNK) { /* its copy may still be landing in the slot */
      w->held[k] = NO_CHUNK;
      (void)scratch_release_after(e, w->held_slot[k], w->stream);
    }
  }
  if (rc != HOIST_OK) {
    engine_note_failure(e, rc);
    atomic_store(&e->failed, 1);
    /* Readers waiting for a scratch slot stop. */
    uv_mutex_lock(&e->pool_lock);
    uv_cond_broadcast(&e->pool_cond);
    uv_mutex_unlock(&e->pool_lock);
  }
  /* Always drain the streams: the slots are reused by the next job. */
  int src = dev->ops->stream_sync(dev, w->stream);
  int crc = w->convert_stream != NULL ? dev->ops->stream_sync(dev, w->convert_stream) : HOIST_OK;
  if (rc == HOIST_OK && (rc = src != HOIST_OK ? src : crc) != HOIST_OK) engine_note_failure(e, rc);
  for (int s = 0; s < SLOTS_PER_THREAD; s++) w->pending[s] = 0;
  w->status = rc;
}

/* The conversion streams and the scratch pool's events, made by the first
 * job that converts on the device (a stream holds device memory: plain
 * loads do not pay for them).  Idempotent; on failure, what was made stays
 * for hoist__engine_destroy and the next call makes the rest. */
static int engine_prepare_conversion(hoist__engine *e) {
  hoist__device *dev = e->dev;
  for (unsigned i = 0; i < e->threads; i++) {
    engine_worker *w = &e->workers[i];
    int rc = HOIST_OK;
    if (w->convert_stream == NULL &&
        (rc = dev->ops->stream_create(dev, &w->convert_stream)) != HOIST_OK)
      return rc;
    for (unsigned s = 0; s < SLOTS_PER_THREAD; s++) {
      void **pe = &e->pool_events[i * SLOTS_PER_THREAD + s];
      if (*pe == NULL && (rc = dev->ops->event_create(dev, pe)) != HOIST_OK) return rc;
    }
  }
  return HOIST_OK;
}

int hoist__engine_run(hoist__engine *e, upload_job *job) {
  job->copy_wait_ns = 0;
  job->scratch_waits = 0;
  job->scratch_wait_ns = 0;
  job->readers = 0;
  int rc = HOIST_OK;
  bool dev_converts = false;
  for (size_t i = 0; !job->to_host && !dev_converts && i < job->nchunks; i++)
    dev_converts = job->chunks[i].from != job->chunks[i].to;
  if (dev_converts) {
    if (job->scratch == 0 || job->scratch_slots == 0)
      return hoist__fail(e->rt, HOIST_INVALID_ARGUMENT, "%s: converts but has no scratch",
                        job->component);
    if (job->scratch_slots > e->threads * SLOTS_PER_THREAD)
      return hoist__fail(e->rt, HOIST_INVALID_ARGUMENT, "%s: %u scratch slots: at most %u",
                        job->component, job->scratch_slots, e->threads * SLOTS_PER_THREAD);
    if ((rc = engine_prepare_conversion(e)) != HOIST_OK) return rc;
  }
  e->job = job;
  atomic_store(&e->next, 0);
  atomic_store(&e->done, 0);
  e->reported = 0;
  atomic_store(&e->failed, 0);
  e->first_status = HOIST_OK;
  e->first_msg[0] = '\0';
  unsigned started = 0;
  unsigned want = e->threads;
  e->pool_nfree = 0;
  for (unsigned s = dev_converts ? job->scratch_slots : 0; s-- > 0;)
    e->pool_free[e->pool_nfree++] = s;
  if (job->nchunks < want) want = job->nchunks > 0 ? (unsigned)job->nchunks : 1;
  for (; started < want; started++) {
    e->workers[started].status = HOIST_OK;
    e->workers[started].waited_ns = 0;
    e->workers[started].scratch_waits = 0;
    e->workers[started].scratch_wait_ns = 0;
    if (uv_thread_create(&e->workers[started].thread, worker_main, &e->workers[started]) != 0) {
      rc = hoist__fail(e->rt, HOIST_NO_MEMORY, "cannot start upload thread %u", started);
      atomic_store(&e->failed, 1);
      break;
    }
  }
  job->readers = started;
  for (unsigned i = 0; i < started; i++) {
    uv_thread_join(&e->workers[i].thread);
    if (rc == HOIST_OK && e->workers[i].status != HOIST_OK) rc = e->workers[i].status;
    job->copy_wait_ns += e->workers[i].waited_ns;
    job->scratch_waits += e->workers[i].scratch_waits;
    job->scratch_wait_ns += e->workers[i].scratch_wait_ns;
  }
  if (job->scratch_waits > 0)
    hoist__log(e->rt, HOIST_LOG_DEBUG,
              "%s: readers found the %u-slot scratch pool empty %llu times and waited %.3f ms "
              "in all for a slot",
              job->component, job->scratch_slots, (unsigned long long)job->scratch_waits,
              job->scratch_wait_ns / 1e6);
  if (e->first_status != HOIST_OK) rc = hoist__fail(e->rt, e->first_status, "%s", e->first_msg);
  e->job = NULL;
  return rc;
}

/* ---- conversion scratch */

/* Pool slots: one chunk each when two chunks fit, up to two per reader
 * (no reader holds more); else two halves of the scratch, or one slot. */
unsigned hoist__engine_scratch_slots(const hoist__engine *e, uint64_t scratch_bytes) {
  const uint64_t most = (uint64_t)SLOTS_PER_THREAD * e->threads;
  uint64_t n = scratch_bytes / e->chunk;
  if (n >= 2) return (unsigned)(n < most ? n : most);
  return scratch_bytes / 2 >= 4096 ? 2 : 1;
}

uint64_t hoist__engine_scratch_slot(const hoist__engine *e, uint64_t scratch_bytes) {
  uint64_t slot = scratch_bytes / hoist__engine_scratch_slots(e, scratch_bytes);
  if (slot > e->chunk) slot = e->chunk;
  return slot & ~(uint64_t)4095;
}

void *hoist__engine_stream(const hoist__engine *e) { return e->workers[0].stream; }
