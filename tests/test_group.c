/* test_group.c — loads with ranks on the host backend, W processes (or W
 * threads of one process) joined by a file rendezvous: every rank's parts
 * put together are the files byte for byte (FSDP2 parts of one component,
 * tensor-parallel parts on dims 0, 1 and 2 of another, a replicated one
 * read once across the ranks and completed over the group's connections),
 * a world of one is a plain load, and the faults: ranks whose plans differ,
 * a refusal on one rank (every rank stops before allocating; or, with
 * on_oom offload, every rank offloads), a killed rank, a frozen rank, a
 * cancel on one rank, a rank that never comes, two ranks with one number. */
#include "testutil.h"

#include "hoist_tools.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define MAX_RANKS 8

static char dir[1024];

/* ---- The pipeline: transformer (for FSDP), text_encoder (for the
 * tensor-parallel plan), vae (replicated); random bytes, never zero. */

typedef struct spec {
  const char *name, *dtype;
  unsigned bits;
  int ndim;
  uint64_t shape[4];
} spec;

static const spec transformer[] = {
    {"a", "F32", 32, 2, {13, 7}},     {"b", "BF16", 16, 1, {5}},
    {"c", "U8", 8, 2, {1, 9}},        {"d", "F16", 16, 2, {0, 4}},
    {"s", "F32", 32, 0, {0}},         {"big", "F32", 32, 2, {300, 257}},
    {"e", "I64", 64, 3, {2, 3, 4}},
};
static const spec text_encoder[] = {
    {"q.weight", "F32", 32, 2, {24, 12}},
    {"o.weight", "BF16", 16, 2, {12, 24}},
    {"t3", "F16", 16, 3, {2, 3, 12}},
    {"ln.weight", "F32", 32, 1, {24}},
};
static const spec vae[] = {
    {"conv", "F32", 32, 4, {64, 3, 3, 3}},
    {"bias", "F32", 32, 1, {64}},
    {"norm", "BF16", 16, 1, {128}},
    {"blob", "U8", 8, 1, {70001}},
};
#define TP_PLAN "text_encoder:q.weight=1,text_encoder:o.weight=0,text_encoder:t3=-1"

static void write_component(const char *name, const spec *t, size_t n, uint64_t seed) {
  char path[1400], header[4096];
  snprintf(path, sizeof path, "%s/pipe/%s", dir, name);
  ck_assert_int_eq(mkdir(path, 0755), 0);
  size_t at = (size_t)snprintf(header, sizeof header, "{");
  uint64_t off = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t elems = 1;
    for (int k = 0; k < t[i].ndim; k++) elems *= t[i].shape[k];
    const uint64_t bytes = elems * t[i].bits / 8;
    at += (size_t)snprintf(header + at, sizeof header - at,
                           "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i > 0 ? "," : "", t[i].name,
                           t[i].dtype);
    for (int k = 0; k < t[i].ndim; k++)
      at += (size_t)snprintf(header + at, sizeof header - at, "%s%llu", k > 0 ? "," : "",
                             (unsigned long long)t[i].shape[k]);
    at += (size_t)snprintf(header + at, sizeof header - at, "],\"data_offsets\":[%llu,%llu]}",
                           (unsigned long long)off, (unsigned long long)(off + bytes));
    off += bytes;
  }
  snprintf(header + at, sizeof header - at, "}");
  unsigned char *data = malloc(off > 0 ? off : 1);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (uint64_t i = 0; i < off; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    data[i] = (unsigned char)(x | 1);
  }
  snprintf(path, sizeof path, "%s/pipe/%s/model.safetensors", dir, name);
  tu_write_safetensors(path, header, data, off);
  free(data);
}

static void write_pipeline(const char *name) {
  char path[1400];
  tu_scratch_dir(name, dir, sizeof dir);
  snprintf(path, sizeof path, "%s/pipe", dir);
  ck_assert_int_eq(mkdir(path, 0755), 0);
  snprintf(path, sizeof path, "%s/pipe/model_index.json", dir);
  const char *index = "{\"_class_name\":\"FluxPipeline\","
                      "\"transformer\":[\"diffusers\",\"FluxTransformer2DModel\"],"
                      "\"text_encoder\":[\"transformers\",\"CLIPTextModel\"],"
                      "\"vae\":[\"diffusers\",\"AutoencoderKL\"],"
                      "\"scheduler\":[\"diffusers\",\"FlowMatchEulerDiscreteScheduler\"]}";
  tu_write_file(path, index, strlen(index));
  write_component("transformer", transformer, sizeof transformer / sizeof transformer[0], 1);
  write_component("text_encoder", text_encoder, sizeof text_encoder / sizeof text_encoder[0], 2);
  write_component("vae", vae, sizeof vae / sizeof vae[0], 3);
}

/* ---- One rank */

typedef struct scenario {
  int world;
  const char *fsdp, *shard, *dtype;
  const char *fsdp_rank1; /* rank 1's own fsdp option (a plan mismatch) */
  uint64_t capacity[MAX_RANKS];
  int on_oom_offload;
  int kill_rank, freeze_rank, cancel_rank, late_cancel_rank, skip_rank, twin_rank;
  double timeout;
} scenario;

static scenario scenario_init(int world) {
  scenario s = {.world = world, .kill_rank = -1, .freeze_rank = -1, .cancel_rank = -1,
                .late_cancel_rank = -1, .skip_rank = -1, .twin_rank = -1, .timeout = 20};
  return s;
}

static volatile int cancel_flag;
static int fault; /* 1 kill, 2 freeze, 3 cancel: what this rank does at its first chunk */

static void on_progress(void *user, const char *component, uint64_t done, uint64_t total) {
  if (done == 0) return;
  if (fault == 1) raise(SIGKILL);
  if (fault == 2) raise(SIGSTOP);
  if (fault == 3 || (fault == 4 && done == total)) /* 4: after its own upload */
    __atomic_store_n(&cancel_flag, 1, __ATOMIC_RELAXED);
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Writes every tensor this rank holds (resident or FSDP components) to f:
 * component, name, its shard info and its bytes. */
static void dump(FILE *f, const hoist_loaded *l) {
  for (size_t i = 0; i < hoist_loaded_component_count(l); i++) {
    const hoist_loaded_info *c = hoist_loaded_component(l, i);
    fprintf(f, "component %s %s\n", c->name, hoist_residency_name(c->residency));
    if (c->residency == HOIST_OFFLOAD) continue;
    for (size_t j = 0; j < c->tensor_count; j++) {
      uint64_t off = 0, addr = 0;
      const hoist_tensor_info *t = hoist__loaded_placed(l, i, j, &off), *info = NULL;
      hoist_shard_info sh;
      if (hoist_loaded_tensor(l, c->name, t->name, &addr, &info) != HOIST_OK ||
          hoist_loaded_tensor_shard(l, c->name, t->name, &sh) != HOIST_OK)
        _exit(120);
      fprintf(f, "tensor %s %s %d %u %llu %llu %llu\n", c->name, t->name, sh.sharded, sh.dim,
              (unsigned long long)sh.offset, (unsigned long long)sh.length,
              (unsigned long long)info->nbytes);
      if (info->nbytes > 0) fwrite((const void *)(uintptr_t)addr, 1, info->nbytes, f);
      fputc('\n', f);
    }
  }
}

/* A rank: joins, loads, writes rank<r>.out (status, seconds, device bytes
 * left allocated, message, and on success the dump); exits with -status. */
static void rank_main(const scenario *s, int rank, int twin) {
  hoist_group_options go = HOIST_GROUP_OPTIONS_INIT;
  char rdv[1200], out[1200];
  snprintf(rdv, sizeof rdv, "file:%s/rendezvous", dir);
  if (twin) snprintf(out, sizeof out, "%s/twin.out", dir);
  else snprintf(out, sizeof out, "%s/rank%d.out", dir, rank);
  go.rank = rank;
  go.world_size = s->world;
  go.rendezvous = rdv;
  go.timeout_seconds = s->timeout;
  fault = rank == s->kill_rank         ? 1
          : rank == s->freeze_rank      ? 2
          : rank == s->cancel_rank      ? 3
          : rank == s->late_cancel_rank ? 4
                                        : 0;
  const double t0 = now_s();
  hoist_group *g = NULL;
  hoist_runtime *rt = NULL;
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.capacity = s->capacity[rank];
  cfg.chunk_bytes = 4096; /* parts cut into many chunks */
  cfg.threads = 2;
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.fsdp = rank == 1 && s->fsdp_rank1 != NULL ? s->fsdp_rank1 : s->fsdp;
  o.shard = s->shard;
  o.dtype = s->dtype;
  o.verify = 1;
  o.headroom = 0;
  o.on_oom = s->on_oom_offload ? HOIST_ON_OOM_OFFLOAD : HOIST_ON_OOM_FAIL;
  o.progress = on_progress;
  o.cancel = &cancel_flag;
  char pipe[1200];
  snprintf(pipe, sizeof pipe, "%s/pipe", dir);
  int rc = hoist_group_create(&go, &g);
  if (rc == HOIST_OK) rc = hoist_runtime_create(&cfg, &rt);
  if (rc == HOIST_OK) rc = hoist_pipeline_open(rt, pipe, NULL, &p);
  if (rc == HOIST_OK) {
    o.group = g;
    rc = hoist_load_pipeline(rt, p, &o, &l);
  }
  char message[2048];
  snprintf(message, sizeof message, "%s", rc == HOIST_OK ? "" : hoist_last_error(rt));
  FILE *f = fopen(out, "w");
  if (f == NULL) _exit(121);
  fprintf(f, "status %d\nseconds %.3f\nallocated %llu\nmessage %s\n", rc, now_s() - t0,
          rt != NULL ? (unsigned long long)hoist__device_host_allocated(rt) : 0ull, message);
  if (rc == HOIST_OK) dump(f, l);
  fclose(f);
  hoist_loaded_close(l);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
  hoist_group_close(g);
  _exit(-rc);
}

/* ---- The world */

typedef struct result {
  int status;       /* the load's status; 1000 + signal when it died */
  double seconds;
  uint64_t allocated;
  char message[2048];
  char *dump;       /* the rank's output file, whole */
  size_t dump_len;
} result;

/* Runs every rank of s (the twin: a second process with its number) and
 * reads what each wrote; a frozen rank is killed once the others ended. */
static void run_world(const scenario *s, result *res) {
  pid_t pids[MAX_RANKS + 1];
  int ranks[MAX_RANKS + 1], n = 0;
  for (int r = 0; r < s->world; r++) {
    if (r == s->skip_rank) continue;
    ranks[n] = r;
    pids[n] = fork();
    ck_assert_int_ge(pids[n], 0);
    if (pids[n] == 0) rank_main(s, r, 0);
    n++;
  }
  if (s->twin_rank >= 0) {
    usleep(200000); /* the first of the two joins first */
    ranks[n] = -1; /* the twin: waited for, its result not kept */
    pids[n] = fork();
    ck_assert_int_ge(pids[n], 0);
    if (pids[n] == 0) rank_main(s, s->twin_rank, 1);
    n++;
  }
  memset(res, 0, sizeof(result) * MAX_RANKS);
  for (int i = 0; i < n; i++) {
    const bool frozen = s->freeze_rank >= 0 && ranks[i] == s->freeze_rank;
    if (frozen) continue;
    int st = 0;
    ck_assert_int_eq(waitpid(pids[i], &st, 0), pids[i]);
    if (ranks[i] < 0) continue;
    res[ranks[i]].status = WIFEXITED(st) ? -WEXITSTATUS(st) : 1000 + WTERMSIG(st);
  }
  for (int i = 0; i < n; i++) {
    if (s->freeze_rank < 0 || ranks[i] != s->freeze_rank) continue;
    int st = 0;
    kill(pids[i], SIGKILL);
    ck_assert_int_eq(waitpid(pids[i], &st, 0), pids[i]);
    res[ranks[i]].status = 1000 + SIGKILL;
  }
  for (int r = 0; r < s->world; r++) {
    char path[1200];
    snprintf(path, sizeof path, "%s/rank%d.out", dir, r);
    if (r == s->skip_rank || res[r].status >= 1000 || access(path, R_OK) != 0) continue;
    res[r].dump = tu_read_file(path, &res[r].dump_len);
    int status = 0;
    unsigned long long alloc = 0;
    ck_assert_int_eq(sscanf(res[r].dump, "status %d\nseconds %lf\nallocated %llu\n", &status,
                            &res[r].seconds, &alloc),
                     3);
    ck_assert_int_eq(status, res[r].status);
    res[r].allocated = alloc;
    const char *m = strstr(res[r].dump, "message ");
    const char *e = m != NULL ? strchr(m, '\n') : NULL;
    if (m != NULL && e != NULL)
      snprintf(res[r].message, sizeof res[r].message, "%.*s", (int)(e - m - 8), m + 8);
  }
}

static void free_results(result *res) {
  for (int r = 0; r < MAX_RANKS; r++) free(res[r].dump);
}

/* ---- Checking the parts against the files */

/* The record of component/tensor in a rank's dump: its shard fields and
 * bytes; NULL when absent. */
static const unsigned char *find_part(const result *r, const char *comp, const char *name,
                                      int *sharded, unsigned *dim, uint64_t *off, uint64_t *len,
                                      uint64_t *nbytes) {
  char key[512];
  snprintf(key, sizeof key, "\ntensor %s %s ", comp, name);
  const char *p = r->dump;
  while ((p = memmem(p, r->dump_len - (size_t)(p - r->dump), key, strlen(key))) != NULL) {
    unsigned long long o, l, n;
    if (sscanf(p + strlen(key), "%d %u %llu %llu %llu", sharded, dim, &o, &l, &n) == 5) {
      *off = o;
      *len = l;
      *nbytes = n;
      return (const unsigned char *)strchr(p + 1, '\n') + 1;
    }
    p++;
  }
  return NULL;
}

/* Every tensor of every component held by the ranks: whole ones equal to
 * the file on every rank, split ones covering their dimension once and,
 * put together, equal to the file.  Returns the bytes each rank holds of
 * component `of` in held[]. */
static void check_union(const scenario *s, const result *res, const char *of, uint64_t *held) {
  char pipe[1200];
  snprintf(pipe, sizeof pipe, "%s/pipe", dir);
  hoist_pipeline *p = NULL;
  ck_assert_int_eq(hoist_pipeline_open(NULL, pipe, NULL, &p), HOIST_OK);
  for (int r = 0; r < s->world; r++) held[r] = 0;
  for (size_t slot = 0; slot < hoist_pipeline_component_count(p); slot++) {
    const hoist_component_info *c = hoist_pipeline_component(p, slot);
    char offloaded[256];
    snprintf(offloaded, sizeof offloaded, "component %s offload\n", c->name);
    if (strstr(res[0].dump, offloaded) != NULL) continue; /* not on the device */
    hoist_file *const *files = NULL;
    const size_t nf = hoist__pipeline_safetensors(p, slot, &files);
    for (size_t fi = 0; fi < nf; fi++)
      for (size_t i = 0; i < hoist_file_tensor_count(files[fi]); i++) {
        const hoist_tensor_info *t = hoist_file_tensor(files[fi], i);
        unsigned char *want = malloc(t->nbytes + 1), *got = calloc(t->nbytes + 1, 1);
        ck_assert_int_eq(hoist_file_read(files[fi], hoist_file_data_offset(files[fi]) + t->begin,
                                         want, t->nbytes),
                         HOIST_OK);
        uint64_t dimlen = t->ndim > 0 ? t->shape[0] : 1;
        unsigned char *covered = NULL;
        int any_split = 0;
        for (int r = 0; r < s->world; r++) {
          int sharded = 0;
          unsigned dim = 0;
          uint64_t off = 0, len = 0, nbytes = 0;
          const unsigned char *b = find_part(&res[r], c->name, t->name, &sharded, &dim, &off,
                                             &len, &nbytes);
          ck_assert_msg(b != NULL, "rank %d holds no %s/%s", r, c->name, t->name);
          if (strcmp(c->name, of) == 0) held[r] += nbytes;
          if (!sharded) {
            ck_assert_uint_eq(nbytes, t->nbytes);
            ck_assert_msg(memcmp(b, want, t->nbytes) == 0, "rank %d: %s/%s differs", r, c->name,
                          t->name);
            continue;
          }
          any_split = 1;
          dimlen = t->shape[dim];
          if (covered == NULL) covered = calloc(dimlen + 1, 1);
          uint64_t outer = 1, row = t->nbytes;
          for (unsigned k = 0; k < dim; k++) outer *= t->shape[k];
          row = dimlen > 0 && outer > 0 ? t->nbytes / outer / dimlen : 0;
          ck_assert_uint_eq(nbytes, outer * len * row);
          for (uint64_t k = off; k < off + len; k++) {
            ck_assert_msg(!covered[k], "%s/%s: index %llu of dim %u held twice", c->name, t->name,
                          (unsigned long long)k, dim);
            covered[k] = 1;
          }
          for (uint64_t o = 0; o < outer; o++)
            memcpy(got + (o * dimlen + off) * row, b + o * len * row, len * row);
        }
        if (any_split) {
          for (uint64_t k = 0; k < dimlen; k++)
            ck_assert_msg(covered[k], "%s/%s: index %llu held by no rank", c->name, t->name,
                          (unsigned long long)k);
          ck_assert_msg(memcmp(got, want, t->nbytes) == 0, "%s/%s: the parts differ from the file",
                        c->name, t->name);
        }
        free(covered);
        free(want);
        free(got);
      }
  }
  hoist_pipeline_close(p);
}

static uint64_t component_bytes(const char *name, const spec *t, size_t n) {
  (void)name;
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t e = 1;
    for (int k = 0; k < t[i].ndim; k++) e *= t[i].shape[k];
    sum += e * t[i].bits / 8;
  }
  return sum;
}

static void union_for(int world) {
  char name[32];
  snprintf(name, sizeof name, "group_union_%d", world);
  write_pipeline(name);
  scenario s = scenario_init(world);
  s.fsdp = "transformer";
  s.shard = TP_PLAN;
  result res[MAX_RANKS];
  run_world(&s, res);
  for (int r = 0; r < world; r++)
    ck_assert_msg(res[r].status == HOIST_OK, "rank %d: %d %s", r, res[r].status, res[r].message);
  uint64_t held[MAX_RANKS];
  check_union(&s, res, "transformer", held);
  /* FSDP: each rank holds its rows, about 1/W of the component (each
   * tensor's parts differ by at most one row, the scalar is on all). */
  const uint64_t total = component_bytes("transformer", transformer, 7), share = total / world;
  uint64_t sum = 0;
  for (int r = 0; r < world; r++) {
    ck_assert_uint_le(held[r], share + 13 * 4 + 257 * 4 + 12 * 8 + 64);
    sum += held[r];
  }
  ck_assert_uint_eq(sum, total + (world - 1) * 4); /* + the scalar on every other rank */
  free_results(res);
}

START_TEST(union_equals_file_w2) { union_for(2); }
END_TEST
START_TEST(union_equals_file_w3) { union_for(3); }
END_TEST
START_TEST(union_equals_file_w4) { union_for(4); }
END_TEST

/* Parts converted while they load (F32, F16 and BF16 to F16; ints kept):
 * verification checks every chunk, strided runs included, against the CPU
 * conversion of the file's bytes; the local shapes are the parts'. */
START_TEST(parts_convert_and_verify) {
  write_pipeline("group_convert");
  scenario s = scenario_init(2);
  s.fsdp = "transformer";
  s.shard = TP_PLAN;
  s.dtype = "f16";
  result res[MAX_RANKS];
  run_world(&s, res);
  for (int r = 0; r < 2; r++)
    ck_assert_msg(res[r].status == HOIST_OK, "rank %d: %s", r, res[r].message);
  /* q.weight [24, 12] F32 split on dim 1: [24, 6] in F16 on each rank. */
  int sharded = 0;
  unsigned dim = 0;
  uint64_t off = 0, len = 0, nbytes = 0;
  ck_assert_ptr_nonnull(find_part(&res[1], "text_encoder", "q.weight", &sharded, &dim, &off,
                                  &len, &nbytes));
  ck_assert_int_eq(sharded, 1);
  ck_assert_uint_eq(dim, 1);
  ck_assert_uint_eq(off, 6);
  ck_assert_uint_eq(nbytes, 24 * 6 * 2);
  free_results(res);
}
END_TEST

/* A world of one: no rendezvous, nothing split, the bytes of a plain load. */
START_TEST(world_of_one_is_a_plain_load) {
  write_pipeline("group_one");
  char pipe[1200];
  snprintf(pipe, sizeof pipe, "%s/pipe", dir);
  hoist_group_options go = HOIST_GROUP_OPTIONS_INIT;
  go.rank = 0;
  go.world_size = 1;
  hoist_group *g = NULL;
  ck_assert_int_eq(hoist_group_create(&go, &g), HOIST_OK);
  ck_assert_int_eq(hoist_group_world_size(g), 1);
  hoist_runtime *rt = tu_host_runtime(0);
  hoist_pipeline *p = NULL;
  hoist_loaded *plain = NULL, *one = NULL;
  ck_assert_int_eq(hoist_pipeline_open(rt, pipe, NULL, &p), HOIST_OK);
  ck_assert_int_eq(hoist_load_pipeline(rt, p, NULL, &plain), HOIST_OK);
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.group = g;
  o.fsdp = "transformer";
  o.shard = TP_PLAN;
  ck_assert_msg(hoist_load_pipeline(rt, p, &o, &one) == HOIST_OK, "%s", hoist_last_error(rt));
  for (size_t i = 0; i < hoist_loaded_component_count(plain); i++) {
    const hoist_loaded_info *a = hoist_loaded_component(plain, i), *b = hoist_loaded_component(one, i);
    ck_assert_str_eq(a->name, b->name);
    ck_assert_uint_eq(a->bytes, b->bytes);
    ck_assert_uint_eq(a->device_bytes, b->device_bytes);
    for (size_t j = 0; j < a->tensor_count; j++) {
      uint64_t off = 0, x = 0, y = 0;
      const hoist_tensor_info *t = hoist__loaded_placed(plain, i, j, &off), *ti = NULL;
      hoist_shard_info sh;
      ck_assert_int_eq(hoist_loaded_tensor(plain, a->name, t->name, &x, &ti), HOIST_OK);
      ck_assert_int_eq(hoist_loaded_tensor(one, a->name, t->name, &y, NULL), HOIST_OK);
      ck_assert_int_eq(memcmp((void *)(uintptr_t)x, (void *)(uintptr_t)y, ti->nbytes), 0);
      ck_assert_int_eq(hoist_loaded_tensor_shard(one, a->name, t->name, &sh), HOIST_OK);
      ck_assert_int_eq(sh.sharded, 0);
      ck_assert_uint_eq(sh.world_size, 1);
      ck_assert_uint_eq(sh.ndim, t->ndim);
    }
  }
  hoist_loaded_close(plain);
  hoist_loaded_close(one);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
  hoist_group_close(g);
}
END_TEST

/* Every rank fails with the same status; every message has needle. */
static void all_fail(const scenario *s, const result *res, int status, const char *needle) {
  for (int r = 0; r < s->world; r++) {
    if (r == s->kill_rank || r == s->freeze_rank || r == s->skip_rank) continue;
    ck_assert_msg(res[r].status == status, "rank %d: status %d (%s), not %d", r, res[r].status,
                  res[r].message, status);
    ck_assert_msg(strstr(res[r].message, needle) != NULL, "rank %d: '%s' lacks '%s'", r,
                  res[r].message, needle);
    ck_assert_msg(res[r].allocated == 0, "rank %d left %llu bytes allocated", r,
                  (unsigned long long)res[r].allocated);
  }
}

START_TEST(plans_that_differ_fail_every_rank) {
  write_pipeline("group_mismatch");
  scenario s = scenario_init(3);
  s.fsdp = "transformer";
  s.fsdp_rank1 = "transformer,vae";
  result res[MAX_RANKS];
  run_world(&s, res);
  all_fail(&s, res, HOIST_GROUP_MISMATCH, "component vae");
  ck_assert_ptr_nonnull(strstr(res[0].message, "rank 1 has"));
  free_results(res);
}
END_TEST

START_TEST(a_refusal_on_one_rank_stops_every_rank) {
  write_pipeline("group_refusal");
  scenario s = scenario_init(3);
  s.fsdp = "transformer";
  s.on_oom_offload = 1; /* no preflight: the vote before the component refuses */
  s.capacity[2] = 64 << 10;
  result res[MAX_RANKS];
  run_world(&s, res);
  all_fail(&s, res, HOIST_ADMISSION, "rank 2 refused 'transformer'");
  free_results(res);
  /* With the preflight (on_oom fail) the plan vote says it, naming rank 2. */
  write_pipeline("group_refusal_preflight");
  s.on_oom_offload = 0;
  run_world(&s, res);
  all_fail(&s, res, HOIST_ADMISSION, "preflight: the plan needs");
  ck_assert_ptr_nonnull(strstr(res[0].message, "rank 2: preflight"));
  free_results(res);
}
END_TEST

START_TEST(a_refusal_with_on_oom_offload_offloads_on_every_rank) {
  write_pipeline("group_offload");
  scenario s = scenario_init(2);
  s.on_oom_offload = 1;
  s.capacity[1] = 64 << 10; /* too little for the transformer on rank 1 */
  result res[MAX_RANKS];
  run_world(&s, res);
  for (int r = 0; r < 2; r++)
    ck_assert_msg(res[r].status == HOIST_OK, "rank %d: %s", r, res[r].message);
  static const char *const names[] = {"transformer", "text_encoder", "vae"};
  for (int k = 0; k < 3; k++) {
    char key[64];
    snprintf(key, sizeof key, "component %s ", names[k]);
    const char *a = strstr(res[0].dump, key), *b = strstr(res[1].dump, key);
    ck_assert(a != NULL && b != NULL);
    ck_assert_msg(strncmp(a, b, strcspn(a, "\n")) == 0, "%s: ranks placed it differently",
                  names[k]);
  }
  ck_assert_ptr_nonnull(strstr(res[0].dump, "component transformer offload"));
  uint64_t held[MAX_RANKS];
  check_union(&s, res, "vae", held); /* what stayed resident is whole on both */
  free_results(res);
}
END_TEST

/* Rank `rank` is killed (fault 1) or frozen (fault 2) at its first chunk:
 * the others fail with HOIST_GROUP_LOST naming it within the timeout. */
static void lost_rank(const char *name, int fault_kind, int rank, double timeout,
                      const char *needle) {
  write_pipeline(name);
  scenario s = scenario_init(3);
  s.fsdp = "transformer";
  s.timeout = timeout;
  if (fault_kind == 1) s.kill_rank = rank;
  else s.freeze_rank = rank;
  result res[MAX_RANKS];
  run_world(&s, res);
  ck_assert_int_eq(res[rank].status, 1000 + SIGKILL);
  all_fail(&s, res, HOIST_GROUP_LOST, needle);
  for (int r = 0; r < 3; r++)
    if (r != rank) ck_assert_double_lt(res[r].seconds, s.timeout + 4);
  free_results(res);
}

START_TEST(a_killed_rank_fails_the_others_in_time) {
  lost_rank("group_killed", 1, 1, 5, "rank 1 closed its connection");
}
END_TEST

START_TEST(a_frozen_rank_fails_the_others_after_the_timeout) {
  lost_rank("group_frozen", 2, 2, 2, "rank 2");
}
END_TEST

START_TEST(a_cancel_on_one_rank_cancels_all) {
  write_pipeline("group_cancel");
  scenario s = scenario_init(4);
  s.fsdp = "transformer";
  s.shard = TP_PLAN;
  s.cancel_rank = 2;
  result res[MAX_RANKS];
  run_world(&s, res);
  all_fail(&s, res, HOIST_CANCELLED, "cancelled");
  ck_assert_msg(strstr(res[0].message, "rank 2") != NULL, "rank 0: '%s'", res[0].message);
  free_results(res);
  /* Cancelled once its own step succeeded: the others stopped, and the
   * vote still names the rank that cancelled. */
  write_pipeline("group_cancel_late");
  s.cancel_rank = -1;
  s.late_cancel_rank = 2;
  run_world(&s, res);
  all_fail(&s, res, HOIST_CANCELLED, "cancel");
  for (int r = 0; r < 4; r++) /* rank 2 keeps its own detail */
    ck_assert_msg(r == 2 || strstr(res[r].message, "rank 2") != NULL, "rank %d: '%s'", r,
                  res[r].message);
  free_results(res);
}
END_TEST

START_TEST(a_rank_that_never_comes) {
  write_pipeline("group_missing");
  scenario s = scenario_init(3);
  s.skip_rank = 2;
  s.timeout = 2;
  result res[MAX_RANKS];
  run_world(&s, res);
  all_fail(&s, res, HOIST_GROUP_LOST, "missing: 2");
  free_results(res);
}
END_TEST

START_TEST(two_ranks_with_one_number) {
  write_pipeline("group_twins");
  scenario s = scenario_init(3);
  s.twin_rank = 1;
  s.skip_rank = 2; /* the twin takes its place in the count */
  result res[MAX_RANKS];
  run_world(&s, res);
  ck_assert_int_eq(res[0].status, HOIST_GROUP_MISMATCH);
  ck_assert_ptr_nonnull(strstr(res[0].message, "two ranks claim rank 1"));
  free_results(res);
}
END_TEST

/* torchrun's variables: RANK, WORLD_SIZE, LOCAL_RANK, and MASTER_ADDR and
 * MASTER_PORT, whose next port is hoist's (MASTER_PORT is torch's store). */
START_TEST(torchrun_variables) {
  write_pipeline("group_torchrun");
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  char master_port[16], pipe[1200];
  snprintf(master_port, sizeof master_port, "%d", ntohs(a.sin_port) - 1);
  snprintf(pipe, sizeof pipe, "%s/pipe", dir);
  pid_t pids[2];
  for (int r = 0; r < 2; r++) {
    pids[r] = fork();
    ck_assert_int_ge(pids[r], 0);
    if (pids[r] != 0) continue;
    char rank[8];
    snprintf(rank, sizeof rank, "%d", r);
    setenv("RANK", rank, 1);
    setenv("LOCAL_RANK", rank, 1);
    setenv("WORLD_SIZE", "2", 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    setenv("MASTER_PORT", master_port, 1);
    unsetenv("HOIST_RENDEZVOUS");
    hoist_group *g = NULL;
    hoist_runtime *rt = NULL;
    hoist_pipeline *p = NULL;
    hoist_loaded *l = NULL;
    hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
    o.fsdp = "transformer";
    int rc = hoist_group_create(NULL, &g);
    if (rc == HOIST_OK && (hoist_group_rank(g) != r || hoist_group_world_size(g) != 2 ||
                           hoist_group_local_rank(g) != r))
      _exit(110);
    if (rc == HOIST_OK) rc = hoist_runtime_create(NULL, &rt);
    if (rc == HOIST_OK) rc = hoist_pipeline_open(rt, pipe, NULL, &p);
    o.group = g;
    if (rc == HOIST_OK) rc = hoist_load_pipeline(rt, p, &o, &l);
    hoist_loaded_close(l);
    hoist_pipeline_close(p);
    hoist_runtime_close(rt);
    hoist_group_close(g);
    _exit(-rc);
  }
  for (int r = 0; r < 2; r++) {
    int st = 0;
    ck_assert_int_eq(waitpid(pids[r], &st, 0), pids[r]);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rank %d: exit %d", r,
                  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  }
}
END_TEST

/* ---- Ranks of one process */

typedef struct thread_rank {
  hoist_group *g;
  int rc;
  char msg[1024];
  uint64_t vae_sum, te_bytes;
} thread_rank;

static void thread_main(void *arg) {
  thread_rank *t = arg;
  char pipe[1200];
  snprintf(pipe, sizeof pipe, "%s/pipe", dir);
  hoist_config cfg = HOIST_CONFIG_INIT;
  cfg.chunk_bytes = 4096;
  cfg.threads = 2;
  hoist_runtime *rt = NULL;
  hoist_pipeline *p = NULL;
  hoist_loaded *l = NULL;
  hoist_load_options o = HOIST_LOAD_OPTIONS_INIT;
  o.group = t->g;
  o.shard = TP_PLAN;
  o.verify = 1;
  t->rc = hoist_runtime_create(&cfg, &rt);
  if (t->rc == HOIST_OK) t->rc = hoist_pipeline_open(rt, pipe, NULL, &p);
  if (t->rc == HOIST_OK) t->rc = hoist_load_pipeline(rt, p, &o, &l);
  if (t->rc != HOIST_OK) snprintf(t->msg, sizeof t->msg, "%s", hoist_last_error(rt));
  for (size_t i = 0; l != NULL && i < hoist_loaded_component_count(l); i++) {
    const hoist_loaded_info *c = hoist_loaded_component(l, i);
    if (strcmp(c->name, "text_encoder") == 0) t->te_bytes = c->bytes;
    uint64_t addr = 0;
    const hoist_tensor_info *info = NULL;
    if (strcmp(c->name, "vae") == 0 &&
        hoist_loaded_tensor(l, "vae", "blob", &addr, &info) == HOIST_OK)
      for (uint64_t k = 0; k < info->nbytes; k++) t->vae_sum += ((unsigned char *)(uintptr_t)addr)[k] * (k + 1);
  }
  hoist_loaded_close(l);
  hoist_pipeline_close(p);
  hoist_runtime_close(rt);
}

START_TEST(ranks_of_one_process) {
  write_pipeline("group_local");
  hoist_group *groups[3];
  ck_assert_int_eq(hoist_group_create_local(3, groups), HOIST_OK);
  thread_rank ranks[3] = {{0}};
  uv_thread_t threads[3];
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(hoist_group_rank(groups[i]), i);
    ranks[i].g = groups[i];
    ck_assert_int_eq(uv_thread_create(&threads[i], thread_main, &ranks[i]), 0);
  }
  for (int i = 0; i < 3; i++) uv_thread_join(&threads[i]);
  /* The blob's own checksum from the file, for the replicated vae. */
  char path[1200];
  snprintf(path, sizeof path, "%s/pipe/vae/model.safetensors", dir);
  hoist_file *f = NULL;
  ck_assert_int_eq(hoist_file_open(NULL, path, &f), HOIST_OK);
  const hoist_tensor_info *blob = hoist_file_find(f, "blob");
  unsigned char *want = malloc(blob->nbytes);
  ck_assert_int_eq(hoist_file_read(f, hoist_file_data_offset(f) + blob->begin, want, blob->nbytes),
                   HOIST_OK);
  uint64_t sum = 0;
  for (uint64_t k = 0; k < blob->nbytes; k++) sum += want[k] * (k + 1);
  for (int i = 0; i < 3; i++) {
    ck_assert_msg(ranks[i].rc == HOIST_OK, "rank %d: %s", i, ranks[i].msg);
    ck_assert_uint_eq(ranks[i].vae_sum, sum);
    ck_assert_uint_lt(ranks[i].te_bytes, component_bytes("te", text_encoder, 4));
  }
  free(want);
  hoist_file_close(f);
  for (int i = 0; i < 3; i++) hoist_group_close(groups[i]);
}
END_TEST

START_TEST(bad_group_options) {
  hoist_group_options go = HOIST_GROUP_OPTIONS_INIT;
  hoist_group *g = NULL;
  go.rank = 2;
  go.world_size = 2;
  ck_assert_int_eq(hoist_group_create(&go, &g), HOIST_INVALID_ARGUMENT);
  go.rank = 0;
  go.rendezvous = "udp://x:1";
  ck_assert_int_eq(hoist_group_create(&go, &g), HOIST_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "is not tcp://HOST:PORT or file:PATH"));
  /* torchrun's variables: MASTER_PORT + 1, and RANK / WORLD_SIZE. */
  setenv("RANK", "0", 1);
  setenv("WORLD_SIZE", "1", 1);
  go = (hoist_group_options)HOIST_GROUP_OPTIONS_INIT;
  ck_assert_int_eq(hoist_group_create(&go, &g), HOIST_OK);
  ck_assert_int_eq(hoist_group_local_rank(g), 0);
  hoist_group_close(g);
  unsetenv("MASTER_ADDR");
  setenv("WORLD_SIZE", "2", 1);
  unsetenv("HOIST_RENDEZVOUS");
  ck_assert_int_eq(hoist_group_create(&go, &g), HOIST_INVALID_ARGUMENT);
  ck_assert_ptr_nonnull(strstr(hoist_last_error(NULL), "MASTER_ADDR and MASTER_PORT"));
}
END_TEST

int main(void) {
  Suite *s = suite_create("group");
  TCase *tc = tcase_create("ranks");
  tcase_add_test(tc, union_equals_file_w2);
  tcase_add_test(tc, union_equals_file_w3);
  tcase_add_test(tc, union_equals_file_w4);
  tcase_add_test(tc, world_of_one_is_a_plain_load);
  tcase_add_test(tc, parts_convert_and_verify);
  tcase_add_test(tc, plans_that_differ_fail_every_rank);
  tcase_add_test(tc, a_refusal_on_one_rank_stops_every_rank);
  tcase_add_test(tc, a_refusal_with_on_oom_offload_offloads_on_every_rank);
  tcase_add_test(tc, a_killed_rank_fails_the_others_in_time);
  tcase_add_test(tc, a_frozen_rank_fails_the_others_after_the_timeout);
  tcase_add_test(tc, a_cancel_on_one_rank_cancels_all);
  tcase_add_test(tc, a_rank_that_never_comes);
  tcase_add_test(tc, two_ranks_with_one_number);
  tcase_add_test(tc, ranks_of_one_process);
  tcase_add_test(tc, torchrun_variables);
  tcase_add_test(tc, bad_group_options);
  tcase_set_timeout(tc, 120);
  suite_add_tcase(s, tc);
  return tu_run_suite(s);
}
