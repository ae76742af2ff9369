/* verify.c — hoist_load_options.verify after a job's upload: every chunk
 * is hashed where it landed and compared with the hash the reader threads
 * took of the bytes they read (verify.h).  When one differs, the chunk is
 * read back and compared with the file to name the tensor and the byte or
 * element. */
#include "verify.h"

#include "convert_ref.h"
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hashes every chunk where it now lies (device: one batch checksum on an
 * engine stream into dev_hashes; host jobs: on the CPU), fetches the device
 * hashes with one copy, and compares them with the hashes the readers took.
 * *bad is the first differing chunk in issue order, or SIZE_MAX when all
 * agree.  Its device hash goes to *dev_hash and *want the value it should
 * have had: the readers' hash, or (*after_convert set) for a converted
 * chunk whose output changed after its conversion, the output's hash at
 * that time. */
static int find_bad_chunk(hoist_runtime *rt, hoist__engine *e, const upload_job *job, size_t *bad,
                          uint64_t *dev_hash, uint64_t *want, int *after_convert) {
  hoist__device *dev = rt->dev;
  int rc = HOIST_OK;
  uint64_t *hashes = NULL;
  *bad = SIZE_MAX;
  *dev_hash = *want = 0;
  *after_convert = 0;
  if (job->nchunks == 0) return HOIST_OK;
  if (job->to_host) {
    /* Host copies: hash them again where they lie. */
    for (size_t i = 0; i < job->nchunks; i++) {
      const upload_chunk *c = &job->chunks[i];
      uint64_t h = hoist__upload_chunk_hash((const void *)(uintptr_t)c->dst, c->dst_len);
      if (h != c->host_hash) {
        *bad = i;
        *dev_hash = h;
        *want = c->host_hash;
        break;
      }
    }
    return HOIST_OK;
  }
  if (job->hash_stride < job->nchunks)
    return hoist__fail(rt, HOIST_INVALID_ARGUMENT, "%s: verify hashes for %llu chunks, job has %zu",
                      job->component, (unsigned long long)job->hash_stride, job->nchunks);
  /* Plain chunks are hashed where they landed and converted outputs again
   * (converted sources were hashed in the scratch during the run), all in
   * one batch: thousands of chunks as four operations on one stream. */
  size_t stride = (size_t)job->hash_stride;
  hoist__checksum_span *spans = malloc(job->nchunks * sizeof *spans);
  if (spans == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "verify: out of memory");
  for (size_t i = 0; i < job->nchunks; i++) {
    const upload_chunk *c = &job->chunks[i];
    uint64_t row = c->from == c->to ? 0 : 2;
    spans[i] = (hoist__checksum_span){c->dst, c->from == c->to ? c->len : c->dst_len,
                                     job->dev_hashes + 8 * (row * stride + i)};
  }
  void *stream = hoist__engine_stream(e);
  rc = dev->ops->checksum_batch(dev, spans, job->nchunks, job->dev_hashes + 24 * (uint64_t)stride,
                                stream);
  free(spans);
  int sync = dev->ops->stream_sync(dev, stream); /* always: the table is in use until then */
  if (rc == HOIST_OK) rc = sync;
  if (rc != HOIST_OK) return rc;
  hashes = malloc(3 * stride * sizeof *hashes);
  if (hashes == NULL) return hoist__fail(rt, HOIST_NO_MEMORY, "verify: out of memory");
  rc = dev->ops->copy_d2h(dev, hashes, job->dev_hashes, 3 * stride * sizeof *hashes);
  for (size_t i = 0; i < job->nchunks && rc == HOIST_OK; i++) {
    const upload_chunk *c = &job->chunks[i];
    if (hashes[i] != c->host_hash) {
      *bad = i;
      *dev_hash = hashes[i];
      *want = c->host_hash;
      break;
    }
    if (c->from != c->to && hashes[2 * stride + i] != hashes[stride + i]) {
      *bad = i;
      *dev_hash = hashes[2 * stride + i];
      *want = hashes[stride + i];
      *after_convert = 1;
      break;
    }
  }
  free(hashes);
  return rc;
}

/* Copies n bytes at addr (the device, or the host copy of a host job) to
 * back. */
static int fetch_landed(hoist_runtime *rt, const upload_job *job, uint64_t addr, void *back,
                        uint64_t n) {
  if (!job->to_host) return rt->dev->ops->copy_d2h(rt->dev, back, addr, (size_t)n);
  memcpy(back, (const void *)(uintptr_t)addr, (size_t)n);
  return HOIST_OK;
}

/* Looks for the first byte (plain) or element (converted) of chunk ch that
 * differs from the file's bytes (converted: from the CPU reference
 * conversion of them), reading one segment at a time.  Returns HOIST_OK
 * with *found set and *seg_at, *at (byte offset in the tensor, or element
 * index) and, for plain chunks, the two byte values filled in; or the
 * status of a step that failed (memory, device, file). */
static int locate_difference(hoist_runtime *rt, const upload_job *job, const upload_chunk *ch,
                             int *found, const upload_segment **seg_at, uint64_t *at,
                             unsigned *dev_byte, unsigned *file_byte) {
  const upload_segment *seg = &job->segs[ch->first_seg];
  const bool converts = ch->from != ch->to;
  const uint64_t sb = converts ? hoist_dtype_bits(ch->from) / 8 : 1;
  const uint64_t db = converts ? hoist_dtype_bits(ch->to) / 8 : 1;
  *found = 0;
  int rc = HOIST_OK;
  for (uint32_t k = 0; k < ch->nseg && rc == HOIST_OK && !*found; k++) {
    const upload_segment *sg = &seg[k];
    const uint64_t n = sg->len / sb, out = n * db;
    unsigned char *file = malloc(sg->len + 1), *back = malloc(out + 1);
    unsigned char *want = converts ? malloc(out + 1) : file;
    if (file == NULL || back == NULL || want == NULL)
      rc = hoist__fail(rt, HOIST_NO_MEMORY, "verify: out of memory");
    if (rc == HOIST_OK)
      rc = fetch_landed(rt, job, ch->dst + sg->slot_off / sb * db, back, out);
    if (rc == HOIST_OK) rc = hoist__upload_read(rt, &job->files[sg->file], sg->file_off, file, sg->len);
    if (rc == HOIST_OK && converts) rc = hoist__convert_ref(want, ch->to, file, ch->from, n);
    if (rc == HOIST_OK && memcmp(back, want, out) != 0) {
      uint64_t j = 0;
      while (memcmp(back + j * db, want + j * db, db) == 0) j++;
      *found = 1;
      *seg_at = sg;
      *at = converts ? sg->tensor_off / sb + j : sg->tensor_off + j;
      *dev_byte = back[j * db];
      *file_byte = want[j * db];
    }
    if (want != file) free(want);
    free(file);
    free(back);
  }
  return rc;
}

/* Names what failed verification in chunk bad (the hashes dev_hash, and
 * want, which it should have had).  A converted chunk's source was hashed
 * in the scratch, which is gone: that mismatch names the chunk's tensors.
 * Otherwise the chunk is read back and compared with the file (converted:
 * with the CPU conversion of the file), segment by segment, to name the
 * tensor and the byte or element; when that reading fails, or finds no
 * difference, the message still reports the mismatch from the hashes. */
static int report_mismatch(hoist_runtime *rt, const loaded_component *c, const upload_job *job,
                           size_t bad, uint64_t dev_hash, uint64_t want, int after_convert) {
  const upload_chunk *ch = &job->chunks[bad];
  const upload_segment *seg = &job->segs[ch->first_seg];
  const placed_tensor *first = &c->tensors[seg[0].tensor];
  const placed_tensor *last = &c->tensors[seg[ch->nseg - 1].tensor];
  const bool converts = ch->from != ch->to;
  const char *from = hoist_dtype_name(ch->from), *to = hoist_dtype_name(ch->to);
  const char *where = job->to_host ? "in its host copy" : "on the device";
  const char *dev_name = job->to_host ? "hash now" : "device hash";
  const char *want_name = converts ? "hash at conversion" : "host hash";
  char what[700];
  if (ch->nseg == 1)
    snprintf(what, sizeof what, "tensor '%s' (from %s)", first->t->name,
             hoist_file_path(c->files[first->file]));
  else
    snprintf(what, sizeof what, "one of the %u tensors '%s' .. '%s' (one transfer)", ch->nseg,
             first->t->name, last->t->name);
  if (converts && !after_convert && !job->to_host) {
    char range[80] = "";
    if (ch->nseg == 1)
      snprintf(range, sizeof range, " in source bytes [%llu, %llu)",
               (unsigned long long)seg[0].tensor_off,
               (unsigned long long)(seg[0].tensor_off + seg[0].len));
    return hoist__fail(rt, HOIST_VERIFY_MISMATCH,
                      "verify: %s: %s differs from the file%s before the %s -> %s conversion: "
                      "device hash %#018llx, host hash %#018llx",
                      c->info->name, what, range, from, to, (unsigned long long)dev_hash,
                      (unsigned long long)want);
  }
  int found = 0;
  const upload_segment *sg = NULL;
  uint64_t at = 0;
  unsigned dev_byte = 0, file_byte = 0;
  int rc = locate_difference(rt, job, ch, &found, &sg, &at, &dev_byte, &file_byte);
  if (rc == HOIST_OK && found) {
    const placed_tensor *t = &c->tensors[sg->tensor];
    if (converts)
      return hoist__fail(rt, HOIST_VERIFY_MISMATCH,
                        "verify: %s: tensor '%s' changed %s after its %s -> %s conversion, at "
                        "element %llu: %s %#018llx, %s %#018llx",
                        c->info->name, t->t->name, where, from, to, (unsigned long long)at,
                        dev_name, (unsigned long long)dev_hash, want_name,
                        (unsigned long long)want);
    return hoist__fail(rt, HOIST_VERIFY_MISMATCH,
                      "verify: %s: tensor '%s' differs from %s at byte %llu (%s %#04x, file "
                      "%#04x): %s %#018llx, host hash %#018llx",
                      c->info->name, t->t->name, hoist_file_path(c->files[t->file]),
                      (unsigned long long)at, job->to_host ? "host copy" : "device", dev_byte,
                      file_byte, dev_name, (unsigned long long)dev_hash,
                      (unsigned long long)want);
  }
  /* Nothing named: the bytes now agree with the file (what was hashed
   * differed, or the alignment padding changed), or they could not be read
   * back.  The hashes still disagree. */
  char why[160] = "";
  if (rc != HOIST_OK)
    snprintf(why, sizeof why, " (could not read it back to name the byte: %s)",
             hoist_status_name(rc));
  return hoist__fail(rt, HOIST_VERIFY_MISMATCH,
                    "verify: %s: %s %s %s%s: %s %#018llx, %s %#018llx%s", c->info->name, what,
                    converts ? "or the padding next to it changed" : "differs", where,
                    converts ? " after the conversion" : "", dev_name,
                    (unsigned long long)dev_hash, want_name, (unsigned long long)want, why);
}

int hoist__upload_job_verify(hoist_runtime *rt, hoist__engine *e, const loaded_component *c,
                      const upload_job *job) {
  size_t bad = SIZE_MAX;
  uint64_t dev_hash = 0, want = 0;
  int after_convert = 0;
  int rc = find_bad_chunk(rt, e, job, &bad, &dev_hash, &want, &after_convert);
  if (rc == HOIST_OK && bad != SIZE_MAX)
    rc = report_mismatch(rt, c, job, bad, dev_hash, want, after_convert);
  return rc;
}
