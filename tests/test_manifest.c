/* test_manifest.c — content manifests on the host backend: the hashes a
 * manifest records (against OpenSSL's SHA-256 and libxxhash's XXH3 taken
 * here directly), the save/load round trip, loads held to a manifest in
 * every read mode, each class of mismatch (size, header, a piece of a big
 * tensor, a small merged tensor, a converted tensor, an offloaded
 * component, a file missing or extra), a file rewritten in place during a
 * load, nothing left allocated after any failure, `hoist check` on weight
 * and side files, malformed and oversized manifest files, and the CLI. */
#include "testutil.h"

#include "manifest.h"
#include "pipeline_fixture.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#define KIB (UINT64_C(1) << 10)

static char dir[1024];

static void setup(const char *name) {
  tu_scratch_dir(name, dir, sizeof dir);
  fixture_write_pipeline(dir, 42);
}

static const char *at(const char *rel) {
  static char buf[4][1200];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, rel);
  return buf[k];
}

static hoist_manifest *make(uint64_t piece) {
  hoist_manifest_options mo = HOIST_MANIFEST_OPTIONS_INIT;
  mo.piece_bytes = piece;
  mo.threads = 3;
  hoist_manifest *m = NULL;
  ck_assert_msg(hoist_manifest_create(NULL, dir, &mo, &m) == HOIST_OK, "%s", hoist_last_error(NULL));
  return m;
}

/* A manifest of dir and a host runtime whose engine exists already, so
 * that the pinned bytes a load leaves behind can be compared with what the
 * engine itself holds. */
typedef struct fx {
  hoist_manifest *m;
  hoist_runtime *rt;
  uint64_t pinned;
} fx;

static fx fx_runtime(hoist_manifest *m, uint32_t threads, uint64_t chunk) {
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.threads = threads;
  cfg.chunk_bytes = chunk;
  fx f = {m, NULL, 0};
  ck_assert_msg(hoist_runtime_create(&cfg, &f.rt) == HOIST_OK, "%s", hoist_last_error(NULL));
  ck_assert_int_eq(hoist__engine_prepare(f.rt), HOIST_OK);
  f.pinned = hoist__device_host_pinned(f.rt);
  return f;
}

/* The fixture pipeline in a fresh folder (NULL name: dir as it is), its
 * manifest in pieces of piece bytes, a runtime. */
static fx fx_open(const char *name, uint64_t piece, uint32_t threads, uint64_t chunk) {
  if (name != NULL) setup(name);
  return fx_runtime(make(piece), threads, chunk);
}

static void fx_close(fx *f) {
  hoist_runtime_close(f->rt);
  hoist_manifest_close(f->m);
}

/* Loads dir with o held to f's manifest and expects status want; a
 * failure must name every string of needles, be one line, and leave
 * nothing allocated. */
static void load_expect(const fx *f, hoist_load_options *o, int want, const char *const *needles) {
  hoist_runtime *rt = f->rt;
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  ck_assert_msg(hoist_pipeline_open(rt, dir, NULL, &p) == HOIST_OK, "%s", hoist_last_error(rt));
  o->manifest = f->m;
  int rc = hoist_load_pipeline(rt, p, o, &l);
  const char *msg = hoist_last_error(rt);
  ck_assert_msg(rc == want, "status %s, want %s: %s", hoist_status_name(rc),
                hoist_status_name(want), msg);
  if (rc != HOIST_OK) {
    ck_assert_ptr_null(l);
    ck_assert_msg(strchr(msg, '\n') == NULL, "two lines: %s", msg);
    for (size_t i = 0; needles != NULL && needles[i] != NULL; i++)
      ck_assert_msg(strstr(msg, needles[i]) != NULL, "'%s' not in: %s", needles[i], msg);
  }
  hoist_loaded_close(l);
  ck_assert_uint_eq(hoist__device_host_allocated(rt), 0);
  ck_assert_uint_eq(hoist__device_host_pinned(rt), f->pinned);
  hoist_pipeline_close(p);
}

/* load_expect with the default options but for the read mode. */
static void load_mode_expect(const fx *f, hoist_read_mode mode, int want,
                             const char *const *needles) {
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.read_mode = mode;
  load_expect(f, &o, want, needles);
}

/* XORs mask into the byte at off of the file at path (same size). */
static void flip(const char *path, uint64_t off, unsigned char mask) {
  int fd = open(path, O_RDWR);
  ck_assert_int_ge(fd, 0);
  unsigned char b = 0;
  ck_assert_int_eq(pread(fd, &b, 1, (off_t)off), 1);
  b ^= mask;
  ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)off), 1);
  close(fd);
}

/* Absolute offset of byte k of tensor name in the file at path. */
static uint64_t tensor_byte(const char *path, const char *name, uint64_t k) {
  hoist_file *f = NULL;
  ck_assert_int_eq(hoist_file_open(NULL, path, &f), HOIST_OK);
  const hoist_tensor_info *t = hoist_file_find(f, name);
  ck_assert_ptr_nonnull(t);
  ck_assert_uint_lt(k, t->nbytes);
  uint64_t off = hoist_file_data_offset(f) + t->begin + k;
  hoist_file_close(f);
  return off;
}

static const char *const T1 = "transformer/diffusion_pytorch_model-00001-of-00002.safetensors";

/* ---- What a manifest records */

static void sha256_file(const char *path, char hex[65]) {
  size_t len = 0;
  unsigned char *data = tu_read_file(path, &len), md[32];
  unsigned n = 0;
  ck_assert(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) == 1);
  hoist__hex(md, 32, hex);
  free(data);
}

/* Every file's SHA-256 and every piece's XXH3, computed here from the
 * file's bytes, equal the manifest's (made in one streaming pass). */
static void check_hashes(const hoist_manifest *m) {
  size_t pieces = 0;
  for (size_t i = 0; i < m->nfiles; i++) {
    const manifest_file *f = &m->files[i];
    char hex[65];
    sha256_file(at(f->path), hex);
    ck_assert_str_eq(hex, f->sha256);
    if (!f->safetensors) continue;
    size_t len = 0;
    unsigned char *data = tu_read_file(at(f->path), &len);
    ck_assert_uint_eq(len, f->pub.size);
    ck_assert_uint_eq(XXH3_64bits(data, (size_t)f->header_bytes), f->header_xxh3);
    for (size_t t = 0; t < f->ntensors; t++) {
      const manifest_tensor *mt = &f->tensors[t];
      const unsigned char *b = data + f->header_bytes + mt->begin;
      uint64_t n = mt->end - mt->begin;
      for (uint64_t k = 0; k * m->piece_bytes < n; k++, pieces++) {
        uint64_t len_k = n - k * m->piece_bytes < m->piece_bytes ? n - k * m->piece_bytes : m->piece_bytes;
        ck_assert_uint_eq(XXH3_64bits(b + k * m->piece_bytes, (size_t)len_k), mt->pieces[k]);
      }
    }
    free(data);
  }
  ck_assert_uint_gt(pieces, 100);
}

START_TEST(records_sha256_and_pieces) {
  setup("mf_records");
  hoist_manifest *m = make(64 * KIB);
  /* 5 weight files; model_index.json and the shard index are side files. */
  ck_assert_uint_eq(m->nweights, 5);
  ck_assert_uint_eq(m->nfiles, 7);
  ck_assert_str_eq(hoist_manifest_file(m, 5)->path, "model_index.json");
  ck_assert_str_eq(hoist_manifest_file(m, 6)->path,
                   "transformer/diffusion_pytorch_model.safetensors.index.json");
  ck_assert_int_eq(hoist_manifest_file(m, 6)->side_file, 1);
  ck_assert_str_eq(hoist_manifest_file(m, 0)->path, "text_encoder/model.safetensors");
  ck_assert_uint_eq(hoist_manifest_file(m, 0)->tensor_count, 20);
  ck_assert_ptr_null(hoist_manifest_file(m, 7));
  ck_assert_uint_eq(hoist_manifest_piece_bytes(m), 64 * KIB);
  ck_assert_ptr_null(hoist_manifest_variant(m));
  check_hashes(m);
  hoist_manifest_close(m);
  m = make(0); /* the default piece: 1 MiB */
  ck_assert_uint_eq(hoist_manifest_piece_bytes(m), UINT64_C(1) << 20);
  check_hashes(m);
  hoist_manifest_close(m);
  hoist_manifest_close(NULL);
}
END_TEST

/* Saved and read back, a manifest is the same, and saving it again gives
 * the same bytes. */
START_TEST(save_load_round_trip) {
  setup("mf_round");
  hoist_manifest *m = make(64 * KIB), *back = NULL, *again = NULL;
  ck_assert_int_eq(hoist_manifest_save(NULL, m, at("m.json")), HOIST_OK);
  ck_assert_msg(hoist_manifest_load(NULL, at("m.json"), &back) == HOIST_OK, "%s",
                hoist_last_error(NULL));
  ck_assert_uint_eq(back->nfiles, m->nfiles);
  ck_assert_uint_eq(back->nweights, m->nweights);
  for (size_t i = 0; i < m->nfiles; i++) {
    const manifest_file *a = &m->files[i], *b = &back->files[i];
    ck_assert_str_eq(a->path, b->path);
    ck_assert_str_eq(a->sha256, b->sha256);
    ck_assert_uint_eq(a->pub.size, b->pub.size);
    ck_assert_uint_eq(a->header_xxh3, b->header_xxh3);
    ck_assert_uint_eq(a->ntensors, b->ntensors);
    for (size_t t = 0; t < a->ntensors; t++) {
      ck_assert_str_eq(a->tensors[t].name, b->tensors[t].name);
      ck_assert_int_eq(a->tensors[t].dtype, b->tensors[t].dtype);
      ck_assert_uint_eq(a->tensors[t].end, b->tensors[t].end);
      uint64_t n = hoist__manifest_pieces(a->tensors[t].end - a->tensors[t].begin, m->piece_bytes);
      ck_assert(n == 0 || memcmp(a->tensors[t].pieces, b->tensors[t].pieces, n * 8) == 0);
    }
  }
  ck_assert_int_eq(hoist_manifest_save(NULL, back, at("m2.json")), HOIST_OK);
  size_t la = 0, lb = 0;
  char *ta = tu_read_file(at("m.json"), &la), *tb = tu_read_file(at("m2.json"), &lb);
  ck_assert(la == lb && memcmp(ta, tb, la) == 0);
  /* Replacing a file keeps no temporary behind. */
  ck_assert_int_eq(hoist_manifest_save(NULL, back, at("m.json")), HOIST_OK);
  ck_assert_int_eq(hoist_manifest_load(NULL, at("m.json"), &again), HOIST_OK);
  char cmd[1400];
  snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s' | grep hoist-)\"", dir);
  ck_assert_int_eq(system(cmd), 0);
  free(ta);
  free(tb);
  hoist_manifest_close(again);
  hoist_manifest_close(back);
  hoist_manifest_close(m);
}
END_TEST

/* A symbolic link (or a folder) where the manifest goes is refused, and
 * what it points to keeps its bytes. */
START_TEST(save_never_writes_through_a_link) {
  setup("mf_link");
  hoist_manifest *m = make(0);
  tu_write_file(at("victim"), "keep", 4);
  ck_assert_int_eq(symlink(at("victim"), at("m.json")), 0);
  ck_assert_int_eq(hoist_manifest_save(NULL, m, at("m.json")), HOIST_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "symbolic link"));
  size_t len = 0;
  char *text = tu_read_file(at("victim"), &len);
  ck_assert(len == 4 && memcmp(text, "keep", 4) == 0);
  free(text);
  ck_assert_int_eq(hoist_manifest_save(NULL, m, dir), HOIST_INVALID_ARGUMENT);
  ck_assert_int_eq(hoist_manifest_save(NULL, m, at("no/such/folder/m.json")), HOIST_IO);
  hoist_manifest_close(m);
}
END_TEST

/* ---- Loads held to a manifest */

/* A pipeline that matches loads in every read mode, chunk size (multiples
 * of the piece) and thread count, with and without verify. */
START_TEST(matching_pipeline_loads_every_mode) {
  setup("mf_modes");
  hoist_manifest *m = make(64 * KIB);
  const struct {
    uint32_t threads;
    uint64_t chunk;
  } cfgs[] = {{3, 64 * KIB}, {2, 128 * KIB}, {1, 4u << 20}, {5, 1u << 20}};
  for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
    fx f = fx_runtime(m, cfgs[c].threads, cfgs[c].chunk);
    for (int mode = HOIST_READ_AUTO; mode <= HOIST_READ_REGISTER; mode++) {
      hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
      o.read_mode = (hoist_read_mode)mode;
      o.verify = mode % 2;
      load_expect(&f, &o, HOIST_OK, NULL);
    }
    hoist_runtime_close(f.rt);
  }
  hoist_manifest_close(m);
}
END_TEST

/* Pieces must fall on chunk boundaries: a chunk (or conversion slot) that
 * is not a multiple of the piece is refused before anything is allocated. */
START_TEST(chunks_must_hold_whole_pieces) {
  fx f = fx_open("mf_chunks", 128 * KIB, 2, 64 * KIB);
  const char *const chunk[] = {"`manifest`", "131072", "65536", NULL};
  load_mode_expect(&f, HOIST_READ_AUTO, HOIST_INVALID_ARGUMENT, chunk);
  hoist_runtime_close(f.rt);
  f = fx_runtime(f.m, 2, 256 * KIB);
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.dtype = "bf16"; /* the fixture's tensors are U8: nothing converts */
  load_expect(&f, &o, HOIST_OK, NULL);
  fx_close(&f);
}
END_TEST

/* A file of another size, or whose header differs at the same size, is
 * refused before anything is allocated, naming the file. */
/* Device allocations the host backend made so far. */
static uint64_t allocations(const fx *f) {
  uint64_t copies = 0, converts = 0, allocs = 0;
  hoist__device_host_counts(f->rt, &copies, &converts, &allocs);
  return allocs;
}

START_TEST(size_and_header_mismatch) {
  fx f = fx_open("mf_size", 64 * KIB, 2, 128 * KIB);
  /* The vae written again with other tensor sizes: a valid file, bigger. */
  uint64_t v[9] = {50000, 20000, 10000, 5000, 1, 2, 3, 0, 4097};
  fixture_write_file(at("vae/diffusion_pytorch_model.safetensors"), "decoder", v, 9, 47);
  uint64_t before = allocations(&f);
  const char *const size[] = {"vae/diffusion_pytorch_model.safetensors",
                              "bytes, the manifest records", NULL};
  load_mode_expect(&f, HOIST_READ_AUTO, HOIST_MANIFEST_MISMATCH, size);
  ck_assert_uint_eq(allocations(&f), before); /* refused before any allocation */
  fixture_write_pipeline(dir, 42);
  load_mode_expect(&f, HOIST_READ_AUTO, HOIST_OK, NULL);
  /* Same size, one byte of the header's metadata changed ("pt" -> "pu"). */
  size_t len = 0;
  char *text = tu_read_file(at(T1), &len);
  char *pt = strstr(text + 8, "\"pt\"");
  ck_assert_ptr_nonnull(pt);
  flip(at(T1), (uint64_t)(pt - text) + 2, 'u' ^ 't');
  free(text);
  before = allocations(&f);
  const char *const header[] = {T1, "header", NULL};
  load_mode_expect(&f, HOIST_READ_AUTO, HOIST_MANIFEST_MISMATCH, header);
  ck_assert_uint_eq(allocations(&f), before);
  fx_close(&f);
}
END_TEST

/* One byte changed at rest in a big tensor (split over chunks), in a
 * small one (merged with others into one chunk) and in a zero-padded
 * neighbour: the load fails naming the file and that tensor, in every
 * read mode, with nothing left allocated. */
START_TEST(piece_mismatch_big_and_small_tensors) {
  fx f = fx_open("mf_piece", 64 * KIB, 3, 128 * KIB);
  const struct {
    const char *tensor;
    uint64_t byte;
  } cases[] = {{"blocks.a.0", 1500000}, {"blocks.a.0", 0}, {"blocks.a.0", 2499999},
               {"blocks.a.7", 100},     {"blocks.a.39", 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint64_t off = tensor_byte(at(T1), cases[i].tensor, cases[i].byte);
    flip(at(T1), off, 0x10);
    char quoted[64];
    snprintf(quoted, sizeof quoted, "tensor '%s'", cases[i].tensor);
    const char *const needles[] = {T1, quoted, "(transformer)", NULL};
    for (int mode = HOIST_READ_PREAD; mode <= HOIST_READ_REGISTER; mode++)
      load_mode_expect(&f, (hoist_read_mode)mode, HOIST_MANIFEST_MISMATCH, needles);
    flip(at(T1), off, 0x10);
  }
  load_mode_expect(&f, HOIST_READ_AUTO, HOIST_OK, NULL);
  fx_close(&f);
}
END_TEST

/* An offloaded component is read into its pinned host copy by the same
 * readers and checked the same way; the host copy is freed. */
START_TEST(offloaded_component_is_checked) {
  fx f = fx_open("mf_offload", 64 * KIB, 2, 64 * KIB);
  const char *vae = "vae/diffusion_pytorch_model.safetensors";
  uint64_t off = tensor_byte(at(vae), "decoder.0", 40000);
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.offload = "vae,text_encoder";
  load_expect(&f, &o, HOIST_OK, NULL);
  flip(at(vae), off, 1);
  const char *const needles[] = {vae, "tensor 'decoder.0'", "(vae)", NULL};
  load_expect(&f, &o, HOIST_MANIFEST_MISMATCH, needles);
  fx_close(&f);
}
END_TEST

/* A weight file the manifest lacks, and one it lists that the pipeline
 * lacks, are refused before anything is allocated. */
START_TEST(missing_and_extra_files) {
  fx f = fx_open("mf_files", 64 * KIB, 2, 64 * KIB);
  uint64_t sizes[2] = {1000, 2000};
  fixture_write_file(at("text_encoder/extra.safetensors"), "extra", sizes, 2, 9);
  const char *const extra[] = {"text_encoder/extra.safetensors", "does not list", NULL};
  load_mode_expect(&f, HOIST_READ_AUTO, HOIST_MANIFEST_MISMATCH, extra);
  ck_assert_int_eq(unlink(at("text_encoder/extra.safetensors")), 0);
  ck_assert_int_eq(unlink(at("text_encoder/model.safetensors")), 0);
  const char *const missing[] = {"text_encoder/model.safetensors",
                                 "not among the pipeline's weight files", NULL};
  load_mode_expect(&f, HOIST_READ_AUTO, HOIST_MANIFEST_MISMATCH, missing);
  fx_close(&f);
}
END_TEST

/* ---- Conversion */

/* A plain model folder of F32 tensors: one big (split into chunks), small
 * ones (merged), and an I32 one (copied as is). */
static void write_f32_model(const char *folder) {
  char path[1200], header[1024];
  snprintf(path, sizeof path, "%s/model.safetensors", folder);
  const uint64_t big = 300000 * 4, small = 100 * 4, ints = 64 * 4;
  snprintf(header, sizeof header,
           "{\"w.big\":{\"dtype\":\"F32\",\"shape\":[300000],\"data_offsets\":[0,%llu]},"
           "\"w.s1\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[%llu,%llu]},"
           "\"w.s2\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[%llu,%llu]},"
           "\"w.ids\":{\"dtype\":\"I32\",\"shape\":[64],\"data_offsets\":[%llu,%llu]}}",
           (unsigned long long)big, (unsigned long long)big, (unsigned long long)(big + small),
           (unsigned long long)(big + small), (unsigned long long)(big + 2 * small),
           (unsigned long long)(big + 2 * small), (unsigned long long)(big + 2 * small + ints));
  /* Whole numbers as floats: every conversion is exact and none is NaN. */
  const size_t n = (size_t)(big + 2 * small + ints);
  unsigned char *data = malloc(n);
  for (size_t i = 0; i < n / 4; i++) {
    float f = (float)(i % 1000) - 500.0f;
    memcpy(data + 4 * i, &f, 4);
  }
  tu_write_safetensors(path, header, data, n);
  free(data);
}

/* Converted loads check the source bytes, before conversion, on the device
 * path (scratch) and on the host path (offload). */
START_TEST(converted_tensor_checked_before_conversion) {
  tu_scratch_dir("mf_convert", dir, sizeof dir);
  write_f32_model(dir);
  fx f = fx_open(NULL, 64 * KIB, 3, 128 * KIB);
  uint64_t copies = 0, converts = 0, allocs = 0;
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.dtype = "bf16";
  load_expect(&f, &o, HOIST_OK, NULL);
  hoist__device_host_counts(f.rt, &copies, &converts, &allocs);
  ck_assert_uint_gt(converts, 0);
  /* A conversion slot that is not a multiple of the piece is refused. */
  o.scratch_bytes = 96 * KIB; /* two 48 KiB slots */
  const char *const slot[] = {"`manifest`", "`scratch_bytes`", NULL};
  load_expect(&f, &o, HOIST_INVALID_ARGUMENT, slot);
  o.scratch_bytes = 0;
  const char *const big[] = {"model.safetensors", "tensor 'w.big'", NULL};
  const char *const small[] = {"model.safetensors", "tensor 'w.s2'", NULL};
  uint64_t off_big = tensor_byte(at("model.safetensors"), "w.big", 700001);
  uint64_t off_small = tensor_byte(at("model.safetensors"), "w.s2", 7);
  for (int host = 0; host < 2; host++) {
    o.offload = host ? "all" : NULL;
    flip(at("model.safetensors"), off_big, 0x40);
    load_expect(&f, &o, HOIST_MANIFEST_MISMATCH, big);
    flip(at("model.safetensors"), off_big, 0x40);
    flip(at("model.safetensors"), off_small, 0x40);
    load_expect(&f, &o, HOIST_MANIFEST_MISMATCH, small);
    flip(at("model.safetensors"), off_small, 0x40);
  }
  o.offload = NULL;
  load_expect(&f, &o, HOIST_OK, NULL);
  fx_close(&f);
}
END_TEST

/* ---- A file rewritten in place while it loads */

/* Where a load's progress rewrites a byte in place, as another process
 * would: in the file of a component loaded after the one reporting. */
typedef struct rewrite {
  const char *when;  /* the component whose progress triggers it */
  const char *path;
  uint64_t off;
  int times;         /* rewrites done */
} rewrite;

static void rewrite_on_progress(void *user, const char *component, uint64_t done, uint64_t total) {
  rewrite *rw = user;
  if (rw->times == 0 && strcmp(component, rw->when) == 0) {
    flip(rw->path, rw->off, 0x01);
    rw->times++;
  }
}

START_TEST(rewrite_in_place_during_load) {
  fx f = fx_open("mf_rewrite", 64 * KIB, 2, 64 * KIB);
  const char *te2 = "text_encoder_2/model.safetensors";
  rewrite rw = {"transformer", at(te2), tensor_byte(at(te2), "encoder.5", 1234), 0};
  const char *const needles[] = {te2, "tensor 'encoder.5'", "changed since the manifest", NULL};
  for (int mode = HOIST_READ_PREAD; mode <= HOIST_READ_DIRECT; mode++) {
    hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
    o.read_mode = (hoist_read_mode)mode;
    o.progress = rewrite_on_progress;
    o.progress_user = &rw;
    rw.times = 0;
    load_expect(&f, &o, HOIST_MANIFEST_MISMATCH, needles);
    ck_assert_int_eq(rw.times, 1);
    flip(rw.path, rw.off, 0x01); /* back as recorded */
  }
  fx_close(&f);
}
END_TEST

/* ---- hoist_manifest_check */

typedef struct seen {
  int n, differ;
  char paths[16][256];
  hoist_manifest_verdict verdicts[16];
} seen;

static void on_result(void *user, const hoist_manifest_result *r) {
  seen *s = user;
  ck_assert_msg(strchr(r->detail, '\n') == NULL, "%s", r->detail);
  if (r->verdict == HOIST_MANIFEST_MATCH) {
    ck_assert_str_eq(r->sha256, r->expected_sha256);
    ck_assert_uint_eq(r->size, r->expected_size);
  } else if (s->differ < 16) {
    snprintf(s->paths[s->differ], sizeof s->paths[0], "%s", r->path);
    s->verdicts[s->differ++] = r->verdict;
  }
  s->n++;
}

static int check(const hoist_manifest *m, seen *s) {
  memset(s, 0, sizeof *s);
  hoist_manifest_options mo = HOIST_MANIFEST_OPTIONS_INIT;
  mo.result = on_result;
  mo.result_user = s;
  mo.threads = 4;
  return hoist_manifest_check(NULL, m, dir, &mo);
}

START_TEST(check_weight_and_side_files) {
  setup("mf_check");
  hoist_manifest *m = make(0);
  seen s;
  ck_assert_msg(check(m, &s) == HOIST_OK, "%s", hoist_last_error(NULL));
  ck_assert_int_eq(s.n, 7);
  ck_assert_int_eq(s.differ, 0);
  /* A tampered index (the same JSON, one more space), a corrupted byte in
   * a weight file, a new side file and a weight file gone: every one is
   * reported, and the status names the first in the manifest's order. */
  const char *index = "transformer/diffusion_pytorch_model.safetensors.index.json";
  size_t len = 0;
  char *text = tu_read_file(at(index), &len);
  char *spaced = malloc(len + 2);
  spaced[0] = ' ';
  memcpy(spaced + 1, text, len);
  tu_write_file(at(index), spaced, len + 1);
  free(spaced);
  free(text);
  ck_assert_int_eq(check(m, &s), HOIST_MANIFEST_MISMATCH);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), index));
  ck_assert_int_eq(s.differ, 1);
  ck_assert_int_eq(s.verdicts[0], HOIST_MANIFEST_SIZE);
  flip(at(T1), tensor_byte(at(T1), "blocks.a.3", 10), 2);
  tu_write_file(at("vae/config.json"), "{}", 2);
  ck_assert_int_eq(unlink(at("text_encoder/model.safetensors")), 0);
  ck_assert_int_eq(check(m, &s), HOIST_MANIFEST_MISMATCH);
  const char *msg = hoist_last_error(NULL);
  ck_assert_msg(strstr(msg, "text_encoder/model.safetensors") != NULL, "%s", msg);
  ck_assert_int_eq(s.differ, 4);
  ck_assert_str_eq(s.paths[0], "text_encoder/model.safetensors");
  ck_assert_int_eq(s.verdicts[0], HOIST_MANIFEST_MISSING);
  ck_assert_str_eq(s.paths[1], T1);
  ck_assert_int_eq(s.verdicts[1], HOIST_MANIFEST_SHA256);
  ck_assert_str_eq(s.paths[2], index);
  ck_assert_str_eq(s.paths[3], "vae/config.json");
  ck_assert_int_eq(s.verdicts[3], HOIST_MANIFEST_EXTRA);
  ck_assert_str_eq(hoist_manifest_verdict_name(HOIST_MANIFEST_EXTRA), "extra");
  hoist_manifest_close(m);
}
END_TEST

/* ---- Malformed manifest files */

/* A small valid manifest as a cJSON tree to break. */
static cJSON *valid_tree(void) {
  tu_scratch_dir("mf_bad", dir, sizeof dir);
  uint64_t sizes[3] = {70000, 10, 0};
  fixture_write_file(at("model.safetensors"), "t", sizes, 3, 5);
  hoist_manifest *m = make(64 * KIB);
  ck_assert_int_eq(hoist_manifest_save(NULL, m, at("good.json")), HOIST_OK);
  hoist_manifest_close(m);
  size_t len = 0;
  char *text = tu_read_file(at("good.json"), &len);
  cJSON *root = cJSON_ParseWithLength(text, len);
  free(text);
  ck_assert_ptr_nonnull(root);
  return root;
}

static cJSON *file0(cJSON *root) {
  return cJSON_GetArrayItem(cJSON_GetObjectItem(root, "files"), 0);
}
static cJSON *tensor0(cJSON *root) {
  return cJSON_GetArrayItem(cJSON_GetObjectItem(file0(root), "tensors"), 0);
}
static void set(cJSON *obj, const char *key, cJSON *v) {
  ck_assert(cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v));
}

typedef void (*breaker)(cJSON *root);
static void b_format(cJSON *r) { set(r, "format", cJSON_CreateString("gguf")); }
static void b_version(cJSON *r) { set(r, "version", cJSON_CreateNumber(2)); }
static void b_piece(cJSON *r) { set(r, "piece_bytes", cJSON_CreateNumber(100000)); }
static void b_piece_small(cJSON *r) { set(r, "piece_bytes", cJSON_CreateNumber(4096)); }
static void b_hash(cJSON *r) { set(r, "piece_hash", cJSON_CreateString("crc32")); }
static void b_variant(cJSON *r) { set(r, "variant", cJSON_CreateString("../fp16")); }
static void b_sha(cJSON *r) { set(file0(r), "sha256", cJSON_CreateString("abc")); }
static void b_sha_upper(cJSON *r) {
  set(file0(r), "sha256", cJSON_CreateString("ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"));
}
static void b_dotdot(cJSON *r) { set(file0(r), "path", cJSON_CreateString("../model.safetensors")); }
static void b_abs(cJSON *r) { set(file0(r), "path", cJSON_CreateString("/etc/passwd")); }
static void b_ctrl(cJSON *r) { set(file0(r), "path", cJSON_CreateString("a\nb.safetensors")); }
static void b_dup(cJSON *r) {
  cJSON_AddItemToArray(cJSON_GetObjectItem(r, "files"), cJSON_Duplicate(file0(r), 1));
}
static void b_size(cJSON *r) { set(file0(r), "size", cJSON_CreateNumber(1.5)); }
static void b_negative(cJSON *r) { set(file0(r), "size", cJSON_CreateNumber(-8)); }
static void b_huge(cJSON *r) { set(file0(r), "size", cJSON_CreateNumber(1e300)); }
static void b_header(cJSON *r) { set(file0(r), "header_bytes", cJSON_CreateNumber(4)); }
static void b_header_hash(cJSON *r) { set(file0(r), "header_xxh3", cJSON_CreateString("xyz")); }
static void b_pieces(cJSON *r) { set(tensor0(r), "xxh3", cJSON_CreateString("0123456789abcdef")); }
static void b_gap(cJSON *r) {
  cJSON *off = cJSON_CreateArray();
  cJSON_AddItemToArray(off, cJSON_CreateNumber(1));
  cJSON_AddItemToArray(off, cJSON_CreateNumber(70001));
  set(tensor0(r), "data_offsets", off);
}
static void b_dtype(cJSON *r) { set(tensor0(r), "dtype", cJSON_CreateString("F99")); }
static void b_shape(cJSON *r) {
  cJSON *shape = cJSON_CreateArray();
  cJSON_AddItemToArray(shape, cJSON_CreateNumber(7));
  set(tensor0(r), "shape", shape);
}
static void b_files(cJSON *r) { set(r, "files", cJSON_CreateObject()); }
static void b_tensors(cJSON *r) { set(file0(r), "tensors", cJSON_CreateString("none")); }

/* Every rule of the format, broken once: HOIST_BAD_MANIFEST in one line
 * naming the file. */
START_TEST(malformed_manifests_refused) {
  static const breaker cases[] = {b_format, b_version, b_piece,  b_piece_small, b_hash,
                                  b_variant, b_sha,    b_sha_upper, b_dotdot,  b_abs,
                                  b_ctrl,   b_dup,     b_size,   b_negative,  b_huge,
                                  b_header, b_header_hash, b_pieces, b_gap,    b_dtype,
                                  b_shape,  b_files,   b_tensors};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    cJSON *root = valid_tree();
    cases[i](root);
    char *text = cJSON_Print(root);
    tu_write_file(at("bad.json"), text, strlen(text));
    cJSON_free(text);
    cJSON_Delete(root);
    hoist_manifest *m = NULL;
    int rc = hoist_manifest_load(NULL, at("bad.json"), &m);
    const char *msg = hoist_last_error(NULL);
    ck_assert_msg(rc == HOIST_BAD_MANIFEST, "case %zu: %s: %s", i, hoist_status_name(rc), msg);
    ck_assert_ptr_null(m);
    ck_assert_msg(strchr(msg, '\n') == NULL && strstr(msg, "bad.json") != NULL, "case %zu: %s",
                  i, msg);
  }
  /* The untouched tree loads. */
  cJSON *root = valid_tree();
  cJSON_Delete(root);
  hoist_manifest *m = NULL;
  ck_assert_int_eq(hoist_manifest_load(NULL, at("good.json"), &m), HOIST_OK);
  hoist_manifest_close(m);
}
END_TEST

/* Text-level rules and caps, checked before parsing. */
START_TEST(manifest_text_and_caps_refused) {
  tu_scratch_dir("mf_caps", dir, sizeof dir);
  /* Pairs of a file's text and what the refusal says. */
  static const char *const cases[][2] = {
      {"{\"format\":", "not valid JSON"},
      {"{\"format\":\"hoist-manifest\",\"format\":\"hoist-manifest\"}", "duplicate key"},
      {"\"\xff\"", "UTF-8"},
      {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", "nesting"},
      {"[]", "not a JSON object"}};
  hoist_manifest *m = NULL;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tu_write_file(at("bad.json"), cases[i][0], strlen(cases[i][0]));
    ck_assert_int_eq(hoist_manifest_load(NULL, at("bad.json"), &m), HOIST_BAD_MANIFEST);
    ck_assert_msg(strstr(hoist_last_error(NULL), cases[i][1]) != NULL, "%s", hoist_last_error(NULL));
  }
  /* Above the 128 MiB cap: refused from its size, without reading it. */
  int fd = open(at("big.json"), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(ftruncate(fd, (off_t)HOIST_MANIFEST_MAX_BYTES + 1), 0);
  close(fd);
  ck_assert_int_eq(hoist_manifest_load(NULL, at("big.json"), &m), HOIST_BAD_MANIFEST);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "128 MiB cap"));
  ck_assert_int_eq(mkfifo(at("fifo.json"), 0600), 0);
  ck_assert_int_eq(hoist_manifest_load(NULL, at("fifo.json"), &m), HOIST_BAD_MANIFEST);
  ck_assert_int_eq(hoist_manifest_load(NULL, dir, &m), HOIST_BAD_MANIFEST);
  ck_assert_int_eq(hoist_manifest_load(NULL, at("none.json"), &m), HOIST_NOT_FOUND);
  ck_assert_ptr_null(m);
}
END_TEST

START_TEST(options_checked) {
  setup("mf_opts");
  hoist_manifest_options mo = HOIST_MANIFEST_OPTIONS_INIT;
  hoist_manifest *m = NULL;
  mo.piece_bytes = 3 * KIB * 64;
  ck_assert_int_eq(hoist_manifest_create(NULL, dir, &mo, &m), HOIST_INVALID_ARGUMENT);
  mo.piece_bytes = 32 * KIB;
  ck_assert_int_eq(hoist_manifest_create(NULL, dir, &mo, &m), HOIST_INVALID_ARGUMENT);
  mo.piece_bytes = 0;
  mo.struct_size = 8;
  ck_assert_int_eq(hoist_manifest_create(NULL, dir, &mo, &m), HOIST_INVALID_ARGUMENT);
  ck_assert_ptr_null(m);
  ck_assert_int_eq(hoist_manifest_create(NULL, at("nothing-here"), NULL, &m), HOIST_NOT_FOUND);
  /* A cancelled run stops and makes nothing. */
  static volatile int cancel = 1;
  mo = (hoist_manifest_options)HOIST_MANIFEST_OPTIONS_INIT;
  mo.cancel = &cancel;
  ck_assert_int_eq(hoist_manifest_create(NULL, dir, &mo, &m), HOIST_CANCELLED);
  ck_assert_ptr_null(m);
}
END_TEST

/* ---- The CLI */

/* Runs the CLI with args; returns its exit code, and its stderr (one
 * string, in err) when err is given. */
static int cli(const char *args, char *err, size_t size) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "%s %s >'%s' 2>'%s'", HOIST_CLI_PATH, args, at("out.txt"), at("err.txt"));
  int st = system(cmd);
  ck_assert(WIFEXITED(st));
  if (err != NULL) {
    size_t len = 0;
    char *text = tu_read_file(at("err.txt"), &len);
    snprintf(err, size, "%.*s", (int)len, text);
    free(text);
  }
  return WEXITSTATUS(st);
}

/* A message is exactly one line. */
static void one_line(const char *err) {
  const char *nl = strchr(err, '\n');
  ck_assert_msg(nl != NULL && nl[1] == '\0', "not one line: [%s]", err);
}

START_TEST(cli_manifest_check_load) {
  setup("mf_cli");
  char args[3000], err[4096];
  snprintf(args, sizeof args, "manifest --threads 2 --piece 64K '%s' -o '%s'", dir, at("m.json"));
  ck_assert_int_eq(cli(args, err, sizeof err), 0);
  snprintf(args, sizeof args, "check --manifest '%s' '%s'", at("m.json"), dir);
  ck_assert_int_eq(cli(args, err, sizeof err), 0);
  snprintf(args, sizeof args, "load --chunk 64K --manifest '%s' '%s'", at("m.json"), dir);
  ck_assert_int_eq(cli(args, err, sizeof err), 0);
  /* The output is never written through a link. */
  tu_write_file(at("victim"), "keep", 4);
  ck_assert_int_eq(symlink(at("victim"), at("link.json")), 0);
  snprintf(args, sizeof args, "manifest '%s' -o '%s'", dir, at("link.json"));
  ck_assert_int_eq(cli(args, err, sizeof err), 2);
  one_line(err);
  size_t len = 0;
  char *text = tu_read_file(at("victim"), &len);
  ck_assert(len == 4 && memcmp(text, "keep", 4) == 0);
  free(text);
  /* Corrupted: load and check exit 3 with one line naming the file; check
   * --json lists every difference. */
  flip(at(T1), tensor_byte(at(T1), "blocks.a.1", 5), 4);
  text = tu_read_file(at("model_index.json"), &len);
  char *longer = malloc(len + 1);
  memcpy(longer, text, len);
  longer[len] = '\n'; /* the same JSON, one byte longer */
  tu_write_file(at("model_index.json"), longer, len + 1);
  free(longer);
  free(text);
  snprintf(args, sizeof args, "load --chunk 64K --manifest '%s' '%s'", at("m.json"), dir);
  ck_assert_int_eq(cli(args, err, sizeof err), 3);
  one_line(err);
  ck_assert_ptr_nonnull(strstr(err, "tensor 'blocks.a.1'"));
  snprintf(args, sizeof args, "check --manifest '%s' '%s'", at("m.json"), dir);
  ck_assert_int_eq(cli(args, err, sizeof err), 3);
  one_line(err);
  ck_assert_ptr_nonnull(strstr(err, T1));
  snprintf(args, sizeof args, "check --json --manifest '%s' '%s'", at("m.json"), dir);
  ck_assert_int_eq(cli(args, err, sizeof err), 3);
  text = tu_read_file(at("out.txt"), &len);
  cJSON *root = cJSON_ParseWithLength(text, len);
  ck_assert_msg(root != NULL, "%s", text);
  ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(root, "ok")));
  const cJSON *diffs = cJSON_GetObjectItem(root, "differences");
  ck_assert_int_eq(cJSON_GetArraySize(diffs), 2);
  ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(diffs, 1), "path")->valuestring,
                   "model_index.json");
  ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(diffs, 1), "side_file")));
  cJSON_Delete(root);
  free(text);
  /* Malformed and oversized manifests: exit 3, one line. */
  tu_write_file(at("bad.json"), "{\"format\":\"hoist-manifest\",\"version\":7}", 39);
  int fd = open(at("big.json"), O_CREAT | O_WRONLY | O_TRUNC, 0644);
  ck_assert_int_eq(ftruncate(fd, (off_t)HOIST_MANIFEST_MAX_BYTES + 1), 0);
  close(fd);
  const char *bad[] = {"bad.json", "big.json"};
  for (int i = 0; i < 2; i++) {
    snprintf(args, sizeof args, "load --manifest '%s' '%s'", at(bad[i]), dir);
    ck_assert_int_eq(cli(args, err, sizeof err), 3);
    one_line(err);
    snprintf(args, sizeof args, "check --manifest '%s' '%s'", at(bad[i]), dir);
    ck_assert_int_eq(cli(args, err, sizeof err), 3);
    one_line(err);
  }
  /* Usage errors: exit 2. */
  snprintf(args, sizeof args, "manifest '%s'", dir);
  ck_assert_int_eq(cli(args, err, sizeof err), 2);
  snprintf(args, sizeof args, "manifest --piece 3000 '%s' -o x", dir);
  ck_assert_int_eq(cli(args, err, sizeof err), 2);
  snprintf(args, sizeof args, "check '%s'", dir);
  ck_assert_int_eq(cli(args, err, sizeof err), 2);
  ck_assert_int_eq(cli("manifest --help", NULL, 0), 0);
  ck_assert_int_eq(cli("check --help", NULL, 0), 0);
}
END_TEST

/* `hoist bench load --compare-manifest` pairs plain loads with checked ones
 * in one process and reports the paired ratio. */
START_TEST(cli_bench_compare_manifest) {
  setup("mf_bench");
  char args[3000], err[4096];
  snprintf(args, sizeof args, "manifest '%s' -o '%s'", dir, at("m.json"));
  ck_assert_int_eq(cli(args, err, sizeof err), 0);
  snprintf(args, sizeof args,
           "bench load --json --threads 2 --repeat 2 --compare-manifest '%s' '%s'", at("m.json"),
           dir);
  ck_assert_msg(cli(args, err, sizeof err) == 0, "%s", err);
  size_t len = 0;
  char *text = tu_read_file(at("out.txt"), &len);
  cJSON *root = cJSON_ParseWithLength(text, len);
  ck_assert_msg(root != NULL, "%s", text);
  const cJSON *cmp = cJSON_GetObjectItem(root, "compare");
  ck_assert_ptr_nonnull(cmp);
  ck_assert_str_eq(cJSON_GetObjectItem(cmp, "manifest")->valuestring, at("m.json"));
  ck_assert(cJSON_IsNull(cJSON_GetObjectItem(root, "manifest")));
  double lo = cJSON_GetObjectItem(cmp, "ratio_min")->valuedouble;
  double med = cJSON_GetObjectItem(cmp, "ratio_median")->valuedouble;
  ck_assert(lo > 0 && lo <= med);
  cJSON_Delete(root);
  free(text);
  /* A compared manifest that does not match fails the benchmark: exit 3. */
  flip(at(T1), tensor_byte(at(T1), "blocks.a.0", 5), 4);
  ck_assert_int_eq(cli(args, err, sizeof err), 3);
  snprintf(args, sizeof args, "bench load --compare-dtype bf16 --compare-manifest m '%s'", dir);
  ck_assert_int_eq(cli(args, err, sizeof err), 2);
}
END_TEST

int main(void) {
  const TTest *const tests[] = {records_sha256_and_pieces,
                                save_load_round_trip,
                                save_never_writes_through_a_link,
                                matching_pipeline_loads_every_mode,
                                chunks_must_hold_whole_pieces,
                                size_and_header_mismatch,
                                piece_mismatch_big_and_small_tensors,
                                offloaded_component_is_checked,
                                missing_and_extra_files,
                                converted_tensor_checked_before_conversion,
                                rewrite_in_place_during_load,
                                check_weight_and_side_files,
                                malformed_manifests_refused,
                                manifest_text_and_caps_refused,
                                options_checked,
                                cli_manifest_check_load,
                                cli_bench_compare_manifest};
  Suite *s = suite_create("manifest");
  TCase *tc = tcase_create("host");
  tcase_set_timeout(tc, 240);
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) tcase_add_test(tc, tests[i]);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
