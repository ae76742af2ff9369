/* manifest_hash.c — hashing whole files for manifests (manifest_hash.h).
 *
 * SHA-256 is sequential within a file, so the parallelism is across files:
 * worker threads (and the calling thread) take the next file, largest
 * first so the long ones start early, and read it front to back in large
 * blocks with POSIX_FADV_SEQUENTIAL (the kernel reads ahead
 * aggressively).  Each block feeds OpenSSL's SHA-256 and, for a
 * safetensors file being recorded, a cursor that cuts the same bytes into
 * the header and the tensors' pieces and feeds them to XXH3 states: one
 * read of the file makes every hash the manifest holds. */
#include "manifest_hash.h"

#include "manifest.h"
#include "safetensors.h" /* hoist__open_regular, hoist__file_fd */

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>
#include <xxhash.h>
#include <xxh_x86dispatch.h>

/* Bytes per read: large enough that the kernel streams the file, small
 * enough to stay in the last-level cache while it is hashed. */
#define READ_BLOCK (8u << 20)
#define MAX_THREADS 16u

/* Cuts a safetensors file's bytes, as they come, into its header and the
 * pieces of its tensors (contiguous from the data section's start, in
 * offset order: the reader checked it). */
typedef struct piece_cursor {
  const hoist_file *st;
  uint64_t data_off;    /* 8 + N */
  uint64_t piece;
  uint64_t at;          /* file offset of the next byte */
  size_t t;             /* current tensor */
  uint64_t in_tensor;   /* its bytes consumed */
  XXH3_state_t *state;  /* the header's, then the current piece's */
  uint64_t *out;
  size_t nout, cap;
  uint64_t header_xxh3;
} piece_cursor;

static void cursor_header(piece_cursor *pc, const unsigned char **p, size_t *n) {
  if (pc->at >= pc->data_off || *n == 0) return;
  uint64_t left = pc->data_off - pc->at;
  size_t take = *n < left ? *n : (size_t)left;
  XXH3_64bits_update(pc->state, *p, take);
  pc->at += take;
  *p += take;
  *n -= take;
  if (pc->at == pc->data_off) {
    pc->header_xxh3 = XXH3_64bits_digest(pc->state);
    XXH3_64bits_reset(pc->state);
  }
}

/* Skips finished (and empty) tensors; false past the last one. */
static bool cursor_tensor(piece_cursor *pc, uint64_t *nbytes) {
  size_t count = hoist_file_tensor_count(pc->st);
  while (pc->t < count) {
    *nbytes = hoist_file_tensor(pc->st, pc->t)->nbytes;
    if (pc->in_tensor < *nbytes) return true;
    pc->t++;
    pc->in_tensor = 0;
  }
  return false;
}

/* Feeds n bytes at the cursor's position.  false when the file holds more
 * than its header says (it changed). */
static bool cursor_feed(piece_cursor *pc, const unsigned char *p, size_t n) {
  cursor_header(pc, &p, &n);
  uint64_t nbytes = 0;
  while (n > 0) {
    if (!cursor_tensor(pc, &nbytes) || pc->nout == pc->cap) return false;
    uint64_t piece_left = pc->piece - pc->in_tensor % pc->piece;
    uint64_t tensor_left = nbytes - pc->in_tensor;
    uint64_t take = piece_left < tensor_left ? piece_left : tensor_left;
    if (take > n) take = n;
    XXH3_64bits_update(pc->state, p, (size_t)take);
    pc->in_tensor += take;
    pc->at += take;
    p += take;
    n -= (size_t)take;
    if (pc->in_tensor % pc->piece == 0 || pc->in_tensor == nbytes) {
      pc->out[pc->nout++] = XXH3_64bits_digest(pc->state);
      XXH3_64bits_reset(pc->state);
    }
  }
  return true;
}

/* The pieces st's tensors have; false on overflow. */
static bool count_pieces(const hoist_file *st, uint64_t piece, uint64_t *n) {
  *n = 0;
  for (size_t i = 0; i < hoist_file_tensor_count(st); i++)
    if (!hoist__add_u64(*n, hoist__manifest_pieces(hoist_file_tensor(st, i)->nbytes, piece), n))
      return false;
  return true;
}

/* What the hashing threads share. */
typedef struct hash_run {
  hoist_runtime *rt;
  hoist__hash_item *items;
  const size_t *order;
  size_t n;
  const hoist__hash_opts *o;
  atomic_size_t next;
  atomic_int stop;
  uv_mutex_t lock;      /* progress: one call at a time */
  uint64_t done, total;
} hash_run;

static void progress(hash_run *r, const char *label, uint64_t add) {
  if (r->o->progress == NULL) return;
  uv_mutex_lock(&r->lock);
  r->done += add;
  r->o->progress(r->o->progress_user, label, r->done, r->total);
  uv_mutex_unlock(&r->lock);
}

static bool cancelled(const hash_run *r) {
  return atomic_load(&r->stop) || (r->o->cancel != NULL && *r->o->cancel);
}

/* The file to hash must be the file discovery read the header of. */
static int same_file(hoist_runtime *rt, const hoist__hash_item *it, int fd, const struct stat *st) {
  struct stat orig;
  char pb[HOIST_SHOW_PATH];
  if (fstat(hoist__file_fd(it->st), &orig) != 0 || orig.st_dev != st->st_dev ||
      orig.st_ino != st->st_ino || (uint64_t)st->st_size != hoist_file_size(it->st))
    return hoist__fail(rt, HOIST_FILE_CHANGED, "%s: replaced or resized since its header was read",
                       hoist__show(it->path, pb, sizeof pb));
  return HOIST_OK;
}

/* Reads the open file fd to its end through the hashes. */
static int read_through(hash_run *r, hoist__hash_item *it, int fd, unsigned char *buf,
                        EVP_MD_CTX *sha, piece_cursor *pc) {
  char pb[HOIST_SHOW_PATH];
  uint64_t got = 0;
  for (;;) {
    if (cancelled(r)) return hoist__fail(r->rt, HOIST_CANCELLED, "hashing cancelled");
    ssize_t k = read(fd, buf, READ_BLOCK);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0)
      return hoist__fail(r->rt, HOIST_IO, "%s: read at offset %llu: %s",
                         hoist__show(it->path, pb, sizeof pb), (unsigned long long)got,
                         strerror(errno));
    if (k == 0) break;
    if (EVP_DigestUpdate(sha, buf, (size_t)k) != 1)
      return hoist__fail(r->rt, HOIST_NO_MEMORY, "SHA-256 update failed");
    if (pc != NULL && !cursor_feed(pc, buf, (size_t)k)) break;
    got += (uint64_t)k;
    progress(r, it->label, (uint64_t)k);
  }
  if (got != it->size || (pc != NULL && pc->nout != pc->cap))
    return hoist__fail(r->rt, HOIST_FILE_CHANGED,
                       "%s: %llu bytes read where %llu were expected: the file changed while it "
                       "was hashed",
                       hoist__show(it->path, pb, sizeof pb), (unsigned long long)got,
                       (unsigned long long)it->size);
  return HOIST_OK;
}

/* The cursor of an item being recorded, with room for all its pieces. */
static int cursor_open(hash_run *r, hoist__hash_item *it, piece_cursor *pc) {
  uint64_t n = 0;
  memset(pc, 0, sizeof *pc);
  if (!count_pieces(it->st, r->o->piece_bytes, &n) || n > SIZE_MAX / sizeof(uint64_t))
    return hoist__fail(r->rt, HOIST_OVERFLOW, "%s: too many pieces", hoist_file_path(it->st));
  pc->st = it->st;
  pc->data_off = hoist_file_data_offset(it->st);
  pc->piece = r->o->piece_bytes;
  pc->cap = (size_t)n;
  pc->out = malloc(n > 0 ? (size_t)n * sizeof *pc->out : 1);
  pc->state = XXH3_createState();
  if (pc->out == NULL || pc->state == NULL || XXH3_64bits_reset(pc->state) != XXH_OK)
    return hoist__fail(r->rt, HOIST_NO_MEMORY, "out of memory for piece hashes");
  return HOIST_OK;
}

static int hash_one(hash_run *r, hoist__hash_item *it, unsigned char *buf) {
  int fd = -1;
  struct stat st;
  piece_cursor pc = {0};
  EVP_MD_CTX *sha = NULL;
  int rc = hoist__open_regular(r->rt, it->path, HOIST_BAD_PATH, &fd, &st);
  if (rc != HOIST_OK) return rc;
  it->size = (uint64_t)st.st_size;
  if (it->want_size != UINT64_MAX && it->size != it->want_size) {
    it->sized_out = 1;
    goto done;
  }
  if (it->st != NULL && ((rc = same_file(r->rt, it, fd, &st)) != HOIST_OK ||
                         (rc = cursor_open(r, it, &pc)) != HOIST_OK))
    goto done;
  (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  sha = EVP_MD_CTX_new();
  if (sha == NULL || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
    rc = hoist__fail(r->rt, HOIST_NO_MEMORY, "cannot start a SHA-256 digest");
    goto done;
  }
  rc = read_through(r, it, fd, buf, sha, it->st != NULL ? &pc : NULL);
  unsigned len = 0;
  if (rc == HOIST_OK && EVP_DigestFinal_ex(sha, it->sha256, &len) != 1)
    rc = hoist__fail(r->rt, HOIST_NO_MEMORY, "SHA-256 final failed");
  if (rc == HOIST_OK && it->st != NULL) {
    it->header_xxh3 = pc.header_xxh3;
    it->pieces = pc.out;
    it->npieces = pc.nout;
    pc.out = NULL;
  }
done:
  EVP_MD_CTX_free(sha);
  XXH3_freeState(pc.state);
  free(pc.out);
  close(fd);
  return rc;
}

static void worker(void *arg) {
  hash_run *r = arg;
  unsigned char *buf = malloc(READ_BLOCK);
  for (;;) {
    size_t k = atomic_fetch_add(&r->next, 1);
    if (k >= r->n) break;
    hoist__hash_item *it = &r->items[r->order[k]];
    it->status = buf == NULL ? hoist__fail(r->rt, HOIST_NO_MEMORY, "out of memory for a read buffer")
                             : hash_one(r, it, buf);
    if (it->status != HOIST_OK)
      snprintf(it->detail, sizeof it->detail, "%s", hoist__thread_last_error());
    if (it->status == HOIST_CANCELLED) atomic_store(&r->stop, 1);
  }
  free(buf);
}

/* Item sizes for the order and the progress total (a file that cannot be
 * stat'ed counts 0; opening it will say why). */
static uint64_t item_size(const hoist__hash_item *it) {
  struct stat st;
  if (it->st != NULL) return hoist_file_size(it->st);
  if (stat(it->path, &st) != 0) return 0;
  if (it->want_size != UINT64_MAX && (uint64_t)st.st_size != it->want_size) return 0;
  return (uint64_t)st.st_size;
}

typedef struct sized {
  uint64_t size;
  size_t i;
} sized;

static int by_size_desc(const void *a, const void *b) {
  const sized *x = a, *y = b;
  if (x->size != y->size) return x->size > y->size ? -1 : 1;
  return x->i < y->i ? -1 : x->i > y->i;
}

int hoist__hash_files(hoist_runtime *rt, hoist__hash_item *items, size_t n,
                      const hoist__hash_opts *o) {
  hash_run r = {.rt = rt, .items = items, .n = n, .o = o};
  sized *s = malloc((n > 0 ? n : 1) * sizeof *s);
  size_t *order = malloc((n > 0 ? n : 1) * sizeof *order);
  if (s == NULL || order == NULL || uv_mutex_init(&r.lock) != 0) {
    free(s);
    free(order);
    return hoist__fail(rt, HOIST_NO_MEMORY, "out of memory hashing files");
  }
  for (size_t i = 0; i < n; i++) {
    items[i].status = HOIST_OK;
    items[i].detail[0] = '\0';
    s[i] = (sized){item_size(&items[i]), i};
    r.total += s[i].size;
  }
  qsort(s, n, sizeof *s, by_size_desc);
  for (size_t i = 0; i < n; i++) order[i] = s[i].i;
  free(s);
  r.order = order;
  atomic_init(&r.next, 0);
  atomic_init(&r.stop, 0);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned want = o->threads != 0 ? o->threads : cores > 0 ? (unsigned)cores : 1;
  if (want > MAX_THREADS) want = MAX_THREADS;
  if (want > n) want = n > 0 ? (unsigned)n : 1;
  uv_thread_t threads[MAX_THREADS];
  unsigned started = 0;
  /* The calling thread is one of the workers, so a thread that cannot be
   * started only slows the run. */
  while (started + 1 < want && uv_thread_create(&threads[started], worker, &r) == 0) started++;
  worker(&r);
  for (unsigned i = 0; i < started; i++) uv_thread_join(&threads[i]);
  uv_mutex_destroy(&r.lock);
  free(order);
  if (atomic_load(&r.stop) || (o->cancel != NULL && *o->cancel))
    return hoist__fail(rt, HOIST_CANCELLED, "hashing cancelled");
  return HOIST_OK;
}

void hoist__hash_items_free(hoist__hash_item *items, size_t n) {
  for (size_t i = 0; items != NULL && i < n; i++) {
    free(items[i].pieces);
    items[i].pieces = NULL;
  }
}
