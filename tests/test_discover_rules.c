/* test_discover_rules.c — what discovery refuses, class by class: shards
 * that disagree with their index or share a tensor, JSON side files over
 * their caps (and out of memory while parsing one), files that are not
 * regular files, names and paths with control characters in messages, the
 * exit codes of bad paths, and the CLI's numeric options and Ctrl-C.
 * Every input is built here, in the build tree. */
#include "testutil.h"

#include "json_lexer.h"
#include "pipeline.h"
#include "pipeline_fixture.h"
#include "safetensors.h"
#include "text.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- Building a test tree */

static char root[4096];

/* root/rel in buf. */
static const char *in_root(char *buf, size_t size, const char *rel) {
  snprintf(buf, size, "%s/%s", root, rel);
  return buf;
}

/* mkdir -p of the folder that holds path. */
static void ensure_parent(const char *path) {
  char dir[4608];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == NULL || slash == dir) return;
  *slash = '\0';
  struct stat st;
  if (stat(dir, &st) == 0) return;
  ensure_parent(dir);
  ck_assert_msg(mkdir(dir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", dir, strerror(errno));
}

/* One file of a test tree: a text file, or (text NULL) a safetensors file
 * of `count` U8 tensors named "<prefix>.0" .. (prefix is JSON text, so
 * escapes like \n are written as such). */
typedef struct node {
  const char *rel;
  const char *text;
  const char *prefix;
  size_t count;
} node;

static void put_node(const node *n, uint64_t seed) {
  char path[4608];
  in_root(path, sizeof path, n->rel);
  ensure_parent(path);
  unlink(path); /* a FIFO or a link left there is replaced, not written through */
  if (n->text != NULL) {
    tu_write_file(path, n->text, strlen(n->text));
    return;
  }
  uint64_t sizes[8];
  ck_assert(n->count <= 8);
  for (size_t i = 0; i < n->count; i++) sizes[i] = 4 + i;
  fixture_write_file(path, n->prefix, sizes, n->count, seed);
}

/* A fresh scratch tree named name holding nodes. */
static void build(const char *name, const node *nodes, size_t n) {
  tu_scratch_dir(name, root, sizeof root);
  for (size_t i = 0; i < n; i++) put_node(&nodes[i], i + 1);
}

#define BUILD(name, ...)                                    \
  do {                                                      \
    static const node nodes_[] = {__VA_ARGS__};             \
    build(name, nodes_, sizeof nodes_ / sizeof nodes_[0]);  \
  } while (0)

/* ---- Messages */

/* A message fit for a terminal: valid UTF-8 without C0/C1 controls or
 * DEL, so one harmless line. */
static void assert_safe_line(const char *msg) {
  size_t len = strlen(msg);
  ck_assert_msg(hoist__utf8_invalid_offset((const unsigned char *)msg, len) == len,
                "message is not valid UTF-8: %s", msg);
  for (const unsigned char *c = (const unsigned char *)msg; *c != '\0'; c++)
    ck_assert_msg(*c >= 0x20 && *c != 0x7f && !(c[0] == 0xC2 && c[1] >= 0x80 && c[1] < 0xA0),
                  "control byte 0x%02x at %zu in: %s", *c, (size_t)(c - (const unsigned char *)msg),
                  msg);
}

/* Opens root/rel (variant may be NULL) expecting status want; the message
 * must be one safe line holding every needle (a NULL-terminated list). */
static void expect_open(const char *rel, const char *variant, int want, const char *const *needles) {
  char path[4608];
  hoist_pipeline_options o = HOIST_PIPELINE_OPTIONS_INIT;
  o.variant = variant;
  hoist_pipeline *p = NULL;
  int rc = hoist_pipeline_open(NULL, in_root(path, sizeof path, rel), &o, &p);
  const char *msg = hoist_last_error(NULL);
  ck_assert_msg(rc == want, "%s: got %s (%s), expected %s", rel, hoist_status_name(rc),
                rc != HOIST_OK ? msg : "", hoist_status_name(want));
  hoist_pipeline_close(p);
  if (rc == HOIST_OK) return;
  ck_assert_ptr_null(p);
  assert_safe_line(msg);
  for (size_t i = 0; needles != NULL && needles[i] != NULL; i++)
    ck_assert_msg(strstr(msg, needles[i]) != NULL, "'%s' lacks '%s'", msg, needles[i]);
}

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

static hoist_pipeline *open_root(const char *variant) {
  hoist_pipeline_options o = HOIST_PIPELINE_OPTIONS_INIT;
  o.variant = variant;
  hoist_pipeline *p = NULL;
  int rc = hoist_pipeline_open(NULL, root, &o, &p);
  ck_assert_msg(rc == HOIST_OK, "%s: %s", hoist_status_name(rc), hoist_last_error(NULL));
  return p;
}

/* ---- Running the CLI */

typedef struct cli_result {
  int code;        /* exit code; -1 when killed by a signal */
  long maxrss_kb;  /* the child's peak resident set */
  char err[8192];  /* its stderr */
  int lines;       /* newline count of err */
} cli_result;

/* Starts hoist with args (NULL-terminated, without argv[0]); stdin and
 * stdout are /dev/null, *err_fd reads its stderr.  A child still running
 * after `seconds` is killed by SIGALRM. */
static pid_t spawn_cli(unsigned seconds, const char *const *args, int *err_fd) {
  const char *argv[64] = {HOIST_CLI_PATH};
  size_t n = 1;
  while (args[n - 1] != NULL && n < 63) {
    argv[n] = args[n - 1];
    n++;
  }
  argv[n] = NULL;
  int pipefd[2];
  ck_assert(pipe(pipefd) == 0);
  pid_t pid = fork();
  ck_assert(pid >= 0);
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    alarm(seconds);
    execv(HOIST_CLI_PATH, (char *const *)argv);
    _exit(127);
  }
  close(pipefd[1]);
  *err_fd = pipefd[0];
  return pid;
}

/* Runs hoist with args to the end (code -1 when a signal, SIGALRM after
 * `seconds` included, ended it). */
static void run_cli(cli_result *r, unsigned seconds, const char *const *args) {
  int fd;
  pid_t pid = spawn_cli(seconds, args, &fd);
  size_t len = 0;
  ssize_t got;
  while ((got = read(fd, r->err + len, sizeof r->err - 1 - len)) > 0) len += (size_t)got;
  r->err[len] = '\0';
  close(fd);
  int st;
  struct rusage ru;
  ck_assert(wait4(pid, &st, 0, &ru) == pid);
  r->code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r->maxrss_kb = ru.ru_maxrss;
  r->lines = 0;
  for (const char *c = r->err; *c != '\0'; c++) r->lines += *c == '\n';
}

/* The CLI exits `code` with exactly one safe line on stderr. */
static void expect_cli(int code, const char *const *args) {
  cli_result r;
  run_cli(&r, 20, args);
  ck_assert_msg(r.code == code, "%s %s: exit %d, expected %d: %s", args[0], args[1], r.code, code,
                r.err);
  ck_assert_msg(r.lines == 1, "%s %s: %d lines on stderr: %s", args[0], args[1], r.lines, r.err);
  r.err[strlen(r.err) - 1] = '\0';
  assert_safe_line(r.err);
}

/* ==== 1. Ambiguous shards: one tensor name, one file, in a component;
 * an index agrees with its shards both ways. */

static const char model_index_te[] = "{\"text_encoder\":[\"transformers\",\"T5EncoderModel\"]}";

START_TEST(tensor_in_two_shards) {
  /* a holds w.0 and w.1; b holds w.0 and z. */
  BUILD("rules_two_shards", {"model_index.json", model_index_te, NULL, 0},
        {"text_encoder/a.safetensors", NULL, "w", 2},
        {"text_encoder/i.safetensors.index.json",
         "{\"weight_map\":{\"w.0\":\"a.safetensors\",\"w.1\":\"a.safetensors\"}}", NULL, 0});
  char path[4608];
  tu_write_safetensors(in_root(path, sizeof path, "text_encoder/b.safetensors"),
                       "{\"w.0\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
                       "\"z\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[3,4]}}",
                       "\x55\x66\x77\x88", 4);
  /* b is not named: ignored, as diffusers does — and the bytes loaded for
   * w.0 are a's. */
  hoist_pipeline *p = open_root(NULL);
  const hoist_component_info *c = hoist_pipeline_component(p, 0);
  ck_assert_uint_eq(c->file_count, 1);
  ck_assert_uint_eq(c->tensor_count, 2);
  hoist_runtime *rt = tu_host_runtime(1 << 20);
  hoist_load_options lo = HOIST_LOAD_OPTIONS_INIT;
  lo.verify = 1;
  hoist_loaded *l = NULL;
  ck_assert_int_eq(hoist_load_pipeline(rt, p, &lo, &l), HOIST_OK);
  uint64_t addr = 0;
  const hoist_tensor_info *ti = NULL;
  ck_assert_int_eq(hoist_loaded_tensor(l, "text_encoder", "w.0", &addr, &ti), HOIST_OK);
  hoist_file *const *files = NULL;
  ck_assert_uint_eq(hoist__pipeline_safetensors(p, 0, &files), 1);
  unsigned char want[16];
  ck_assert_uint_eq(ti->nbytes, 4);
  ck_assert_int_eq(hoist_file_read(files[0], hoist_file_data_offset(files[0]) + ti->begin, want,
                                   (size_t)ti->nbytes),
                   HOIST_OK);
  ck_assert_int_eq(memcmp((const void *)(uintptr_t)addr, want, (size_t)ti->nbytes), 0);
  hoist_loaded_close(l);
  hoist_runtime_close(rt);
  hoist_pipeline_close(p);
  /* Named, b makes w.0 ambiguous: refused naming the tensor and both. */
  node idx = {"text_encoder/i.safetensors.index.json",
              "{\"weight_map\":{\"w.0\":\"a.safetensors\",\"w.1\":\"a.safetensors\","
              "\"z\":\"b.safetensors\"}}",
              NULL, 0};
  put_node(&idx, 0);
  expect_open(".", NULL, HOIST_BAD_INDEX,
              NEEDLES("'w.0'", "text_encoder/a.safetensors", "text_encoder/b.safetensors"));
  expect_cli(3, NEEDLES("plan", root));
  expect_cli(3, NEEDLES("load", "--verify", root));
}
END_TEST

/* Index variants, each refused naming the tensor (and the files). */
START_TEST(index_disagrees_with_shards) {
  static const struct {
    const char *index;
    const char *needle[3];
  } cases[] = {
      /* a duplicate key, with the same or another shard */
      {"{\"weight_map\":{\"w.0\":\"s1.safetensors\",\"w.0\":\"s1.safetensors\","
       "\"w.1\":\"s2.safetensors\",\"w.2\":\"s2.safetensors\"}}",
       {"duplicate key 'w.0'", "weight_map", "s1.safetensors"}},
      {"{\"weight_map\":{\"w.0\":\"s1.safetensors\",\"w.1\":\"s2.safetensors\","
       "\"w.2\":\"s2.safetensors\",\"w.0\":\"s2.safetensors\"}}",
       {"duplicate key 'w.0'", "'s1.safetensors' and 's2.safetensors'", NULL}},
      /* an entry whose shard does not hold the tensor */
      {"{\"weight_map\":{\"w.0\":\"s1.safetensors\",\"w.1\":\"s2.safetensors\","
       "\"w.2\":\"s2.safetensors\",\"ghost\":\"s1.safetensors\"}}",
       {"'ghost'", "s1.safetensors", "does not hold it"}},
      {"{\"weight_map\":{\"w.0\":\"s2.safetensors\",\"w.1\":\"s2.safetensors\","
       "\"w.2\":\"s2.safetensors\"}}",
       {"'w.0'", "s2.safetensors", NULL}},
      /* a tensor of a named shard that weight_map leaves out */
      {"{\"weight_map\":{\"w.0\":\"s1.safetensors\",\"w.1\":\"s2.safetensors\"}}",
       {"'w.2'", "s2.safetensors", "not in weight_map"}},
      /* duplicate keys anywhere in the file */
      {"{\"metadata\":{\"total_size\":1,\"total_size\":2},\"weight_map\":{"
       "\"w.0\":\"s1.safetensors\",\"w.1\":\"s2.safetensors\",\"w.2\":\"s2.safetensors\"}}",
       {"duplicate key 'total_size'", "metadata", NULL}},
  };
  BUILD("rules_index", {"model_index.json", model_index_te, NULL, 0},
        {"text_encoder/s1.safetensors", NULL, "w", 1});
  /* s2 holds w.1 and w.2. */
  char path[4608];
  tu_write_safetensors(in_root(path, sizeof path, "text_encoder/s2.safetensors"),
                       "{\"w.1\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                       "\"w.2\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[2,5]}}",
                       NULL, 5);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    node idx = {"text_encoder/model.safetensors.index.json", cases[i].index, NULL, 0};
    put_node(&idx, 0);
    const char *needles[4] = {cases[i].needle[0], cases[i].needle[1], cases[i].needle[2], NULL};
    expect_open(".", NULL, HOIST_BAD_INDEX, needles);
  }
  /* The agreeing index opens. */
  node good = {"text_encoder/model.safetensors.index.json",
               "{\"weight_map\":{\"w.0\":\"s1.safetensors\",\"w.1\":\"s2.safetensors\","
               "\"w.2\":\"s2.safetensors\"}}",
               NULL, 0};
  put_node(&good, 0);
  hoist_pipeline_close(open_root(NULL));
}
END_TEST

START_TEST(two_indexes_must_agree) {
  BUILD("rules_two_indexes", {"model_index.json", model_index_te, NULL, 0},
        {"text_encoder/x.safetensors", NULL, "x", 1},
        {"text_encoder/y.safetensors", NULL, "y", 1},
        {"text_encoder/a.safetensors.index.json",
         "{\"weight_map\":{\"x.0\":\"x.safetensors\",\"y.0\":\"y.safetensors\"}}", NULL, 0},
        {"text_encoder/b.safetensors.index.json", "{\"weight_map\":{\"x.0\":\"x.safetensors\"}}",
         NULL, 0});
  /* Repeating an entry is fine. */
  hoist_pipeline *p = open_root(NULL);
  ck_assert_uint_eq(hoist_pipeline_component(p, 0)->file_count, 2);
  hoist_pipeline_close(p);
  /* Mapping it elsewhere is not: both indexes are named. */
  node b = {"text_encoder/b.safetensors.index.json", "{\"weight_map\":{\"x.0\":\"y.safetensors\"}}",
            NULL, 0};
  put_node(&b, 0);
  expect_open(".", NULL, HOIST_BAD_INDEX,
              NEEDLES("'x.0'", "a.safetensors.index.json", "b.safetensors.index.json"));
}
END_TEST

START_TEST(plain_files_share_a_tensor) {
  BUILD("rules_plain", {"model_index.json", "{\"vae\":[\"diffusers\",\"AutoencoderKL\"]}", NULL, 0},
        {"vae/a.safetensors", NULL, "dec", 2}, {"vae/b.safetensors", NULL, "dec", 1},
        /* a folder of weights without model_index.json: the same rule */
        {"single/one.safetensors", NULL, "enc", 1}, {"single/two.safetensors", NULL, "enc", 3});
  expect_open(".", NULL, HOIST_BAD_PIPELINE,
              NEEDLES("'dec.0'", "vae/a.safetensors", "vae/b.safetensors"));
  expect_open("single", NULL, HOIST_BAD_PIPELINE,
              NEEDLES("'enc.0'", "single/one.safetensors", "single/two.safetensors"));
  expect_cli(3, NEEDLES("plan", root));
}
END_TEST

START_TEST(variants_and_cache_links_follow_the_rule) {
  /* A variant index that disagrees is refused when that variant is asked
   * for; the default files, which agree, still open. */
  BUILD("rules_variant", {"model_index.json", model_index_te, NULL, 0},
        {"text_encoder/model.safetensors", NULL, "t", 2},
        {"text_encoder/model.fp16-00001-of-00002.safetensors", NULL, "t", 1},
        {"text_encoder/model.fp16-00002-of-00002.safetensors", NULL, "t", 2},
        {"text_encoder/model.safetensors.index.fp16.json",
         "{\"weight_map\":{\"t.0\":\"model.fp16-00001-of-00002.safetensors\","
         "\"t.1\":\"model.fp16-00002-of-00002.safetensors\"}}",
         NULL, 0},
        /* Hugging Face cache: shards are links into blobs/ */
        {"blobs/1", NULL, "h", 1}, {"blobs/2", NULL, "h", 2},
        {"blobs/3",
         "{\"weight_map\":{\"h.0\":\"m-00001-of-00002.safetensors\","
         "\"h.1\":\"m-00002-of-00002.safetensors\"}}",
         NULL, 0},
        {"snap/model_index.json", "{\"vae\":[\"diffusers\",\"AutoencoderKL\"]}", NULL, 0});
  hoist_pipeline_close(open_root(NULL));
  expect_open(".", "fp16", HOIST_BAD_INDEX,
              NEEDLES("'t.0'", "model.fp16-00001-of-00002.safetensors",
                      "model.fp16-00002-of-00002.safetensors"));
  char a[4608], b[4608];
  ck_assert_int_eq(mkdir(in_root(a, sizeof a, "snap/vae"), 0755), 0);
  ck_assert_int_eq(symlink("../../blobs/1", in_root(a, sizeof a, "snap/vae/m-00001-of-00002.safetensors")), 0);
  ck_assert_int_eq(symlink("../../blobs/2", in_root(b, sizeof b, "snap/vae/m-00002-of-00002.safetensors")), 0);
  ck_assert_int_eq(symlink("../../blobs/3", in_root(b, sizeof b, "snap/vae/m.safetensors.index.json")), 0);
  expect_open("snap", NULL, HOIST_BAD_INDEX,
              NEEDLES("'h.0'", "snap/vae/m-00001-of-00002.safetensors",
                      "snap/vae/m-00002-of-00002.safetensors"));
}
END_TEST

/* ==== 2. JSON side files: caps before parsing, out of memory as such */

/* Writes rel: text padded with spaces to exactly size bytes. */
static void put_padded(const char *rel, const char *text, size_t size) {
  size_t n = strlen(text);
  ck_assert(n <= size);
  char *buf = malloc(size);
  ck_assert_ptr_nonnull(buf);
  memcpy(buf, text, n);
  memset(buf + n, ' ', size - n);
  char path[4608];
  in_root(path, sizeof path, rel);
  ensure_parent(path);
  tu_write_file(path, buf, size);
  free(buf);
}

/* "[[[...0...]]]" nested depth times, wrapped as {"key": ...}. */
static char *nested(const char *key, size_t depth) {
  char *s = malloc(2 * depth + strlen(key) + 16);
  ck_assert_ptr_nonnull(s);
  size_t o = (size_t)sprintf(s, "{\"%s\":", key);
  for (size_t i = 0; i < depth; i++) s[o++] = '[';
  s[o++] = '0';
  for (size_t i = 0; i < depth; i++) s[o++] = ']';
  strcpy(s + o, "}");
  return s;
}

START_TEST(side_file_size_caps) {
  static const char mi[] = "{\"vae\":[\"diffusers\",\"AutoencoderKL\"]}";
  BUILD("rules_caps", {"p/vae/m.safetensors", NULL, "v", 1},
        {"plain/model.safetensors", NULL, "w", 1});
  /* model_index.json: 1 MiB passes, one byte more is refused. */
  put_padded("p/model_index.json", mi, (size_t)1 << 20);
  expect_open("p", NULL, HOIST_OK, NULL);
  put_padded("p/model_index.json", mi, ((size_t)1 << 20) + 1);
  expect_open("p", NULL, HOIST_BAD_PIPELINE, NEEDLES("model_index.json", "1048577 bytes", "1 MiB cap"));
  put_padded("p/model_index.json", mi, strlen(mi));
  /* An index: 64 MiB + 1 is refused from its size alone (a sparse file,
   * never read). */
  char path[4608];
  int fd = open(in_root(path, sizeof path, "p/vae/m.safetensors.index.json"),
                O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(ftruncate(fd, ((off_t)64 << 20) + 1), 0);
  close(fd);
  expect_open("p", NULL, HOIST_BAD_INDEX, NEEDLES("m.safetensors.index.json", "64 MiB cap"));
  unlink(path);
  /* config.json of a plain model: over its cap it is refused, not skipped. */
  put_padded("plain/config.json", "{\"architectures\":[\"T5EncoderModel\"]}", ((size_t)1 << 20) + 1);
  expect_open("plain", NULL, HOIST_BAD_PIPELINE, NEEDLES("config.json", "1 MiB cap"));
  expect_cli(3, NEEDLES("plan", in_root(path, sizeof path, "plain")));
}
END_TEST

START_TEST(side_file_depth_values_and_nul) {
  BUILD("rules_depth", {"vae/m.safetensors", NULL, "v", 1},
        {"plain/model.safetensors", NULL, "w", 1});
  /* Nesting: 32 levels pass, 33 are refused, in each kind of side file. */
  /* {"x": {"cfg": [...]}} in a top object: 2 + k levels. */
  char *ok = nested("cfg", 30), *deep = nested("cfg", 31);
  char mi[256];
  snprintf(mi, sizeof mi, "{\"vae\":[\"diffusers\",\"AutoencoderKL\"],\"cfg\":%s}", "0");
  node n = {"model_index.json", NULL, NULL, 0};
  char *doc = malloc(strlen(deep) + 128);
  ck_assert_ptr_nonnull(doc);
  sprintf(doc, "{\"vae\":[\"diffusers\",\"V\"],\"x\":%s}", ok);
  n.text = doc;
  put_node(&n, 0);
  expect_open(".", NULL, HOIST_OK, NULL);
  sprintf(doc, "{\"vae\":[\"diffusers\",\"V\"],\"x\":%s}", deep);
  put_node(&n, 0);
  expect_open(".", NULL, HOIST_BAD_PIPELINE, NEEDLES("model_index.json", "nesting deeper than 32"));
  n.text = mi;
  put_node(&n, 0);
  sprintf(doc, "{\"weight_map\":{\"v.0\":\"m.safetensors\"},\"metadata\":%s}", deep);
  node idx = {"vae/m.safetensors.index.json", doc, NULL, 0};
  put_node(&idx, 0);
  expect_open(".", NULL, HOIST_BAD_INDEX, NEEDLES("m.safetensors.index.json", "nesting"));
  sprintf(doc, "{\"a\":%s}", deep);
  node cfg = {"plain/config.json", doc, NULL, 0};
  put_node(&cfg, 0);
  expect_open("plain", NULL, HOIST_BAD_PIPELINE, NEEDLES("config.json", "nesting"));
  free(doc);
  free(ok);
  free(deep);
  /* More than 2^21 values in an index (4 MiB of zeros) are refused. */
  size_t count = ((size_t)1 << 21) + 1, cap = 2 * count + 128, o;
  char *big = malloc(cap);
  ck_assert_ptr_nonnull(big);
  o = (size_t)sprintf(big, "{\"weight_map\":{\"v.0\":\"m.safetensors\"},\"metadata\":[");
  for (size_t i = 0; i + 2 < count; i++) o += (size_t)sprintf(big + o, "0,");
  strcpy(big + o, "0]}");
  idx.text = big;
  put_node(&idx, 0);
  expect_open(".", NULL, HOIST_BAD_INDEX, NEEDLES("JSON values", "2097152"));
  free(big);
  /* Strings that decode to U+0000 (cJSON would cut them), anywhere. */
  idx.text = "{\"weight_map\":{\"v.0\":\"m.safetensors\\u0000.bin\"}}";
  put_node(&idx, 0);
  expect_open(".", NULL, HOIST_BAD_INDEX, NEEDLES("U+0000"));
  idx.text = "{\"weight_map\":{\"v.0\":\"m.safetensors\"}}";
  put_node(&idx, 0);
  n.text = "{\"va\\u0000e\":[\"diffusers\",\"V\"],\"vae\":[\"diffusers\",\"V\"]}";
  put_node(&n, 0);
  expect_open(".", NULL, HOIST_BAD_PIPELINE, NEEDLES("U+0000"));
  n.text = mi;
  put_node(&n, 0);
  expect_open(".", NULL, HOIST_OK, NULL);
}
END_TEST

/* cJSON's allocator, failing from the n-th call on. */
static long allocs_left;
static void *failing_malloc(size_t size) { return allocs_left-- > 0 ? malloc(size) : NULL; }

/* Opens root with cJSON failing from allocation k on, for k = 0, 1, ...
 * until the open succeeds: every failure must be HOIST_NO_MEMORY (never
 * "not valid JSON"); returns how many failed. */
static long open_under_failing_cjson(const char *rel) {
  char path[4608];
  in_root(path, sizeof path, rel);
  for (long k = 0;; k++) {
    cJSON_Hooks hooks = {failing_malloc, free};
    allocs_left = k;
    cJSON_InitHooks(&hooks);
    hoist_pipeline *p = NULL;
    int rc = hoist_pipeline_open(NULL, path, NULL, &p);
    cJSON_InitHooks(NULL);
    hoist_pipeline_close(p);
    if (rc == HOIST_OK) return k;
    const char *msg = hoist_last_error(NULL);
    ck_assert_msg(rc == HOIST_NO_MEMORY, "allocation %ld: %s (%s)", k, hoist_status_name(rc), msg);
    ck_assert_msg(strstr(msg, "out of memory") != NULL, "allocation %ld: %s", k, msg);
    assert_safe_line(msg);
  }
}

START_TEST(out_of_memory_while_parsing) {
  BUILD("rules_oom", {"model_index.json",
                      "{\"_class_name\":\"P\",\"text_encoder\":[\"transformers\",\"T5\"],"
                      "\"vae\":[\"diffusers\",\"V\"],\"shift\":{\"a\":[1,2,{\"b\":null}]}}",
                      NULL, 0},
        {"text_encoder/a.safetensors", NULL, "a", 2}, {"text_encoder/b.safetensors", NULL, "b", 2},
        {"text_encoder/model.safetensors.index.json",
         "{\"metadata\":{\"total_size\":18},\"weight_map\":{\"a.0\":\"a.safetensors\","
         "\"a.1\":\"a.safetensors\",\"b.0\":\"b.safetensors\",\"b.1\":\"b.safetensors\"}}",
         NULL, 0},
        {"vae/m.safetensors", NULL, "d", 3},
        {"plain/model.safetensors", NULL, "w", 1},
        {"plain/config.json", "{\"architectures\":[\"T5EncoderModel\"],\"d\":{\"e\":[1,2]}}", NULL,
         0});
  /* model_index.json, the index and the safetensors headers all parse
   * through cJSON: dozens of allocations, each tried failing. */
  ck_assert_int_gt(open_under_failing_cjson("."), 20);
  ck_assert_int_gt(open_under_failing_cjson("plain"), 5);
}
END_TEST

/* Peak memory of `hoist plan` on an index at its 64 MiB cap that packs
 * in the most cJSON values allowed (2^21): the caps bound it. */
START_TEST(plan_memory_at_the_cap) {
  BUILD("rules_rss", {"model_index.json", "{\"vae\":[\"diffusers\",\"V\"]}", NULL, 0},
        {"vae/m.safetensors", NULL, "v", 1});
  size_t size = (size_t)64 << 20, count = ((size_t)1 << 21) - 8;
  char *buf = malloc(size);
  ck_assert_ptr_nonnull(buf);
  size_t o = (size_t)sprintf(buf, "{\"weight_map\":{\"v.0\":\"m.safetensors\"},\"metadata\":[");
  for (size_t i = 0; i + 1 < count; i++) o += (size_t)sprintf(buf + o, "0,");
  o += (size_t)sprintf(buf + o, "0]}");
  memset(buf + o, ' ', size - o);
  char path[4608];
  tu_write_file(in_root(path, sizeof path, "vae/m.safetensors.index.json"), buf, size);
  free(buf);
  cli_result r;
  run_cli(&r, 120, NEEDLES("plan", root));
  ck_assert_msg(r.code == 0, "exit %d: %s", r.code, r.err);
#if defined(__SANITIZE_ADDRESS__)
  const long bound_kb = 1L << 20; /* shadow memory and quarantine */
#else
  const long bound_kb = 512L << 10;
#endif
  printf("hoist plan, 64 MiB index of 2^21 values: peak RSS %ld MiB\n", r.maxrss_kb >> 10);
  ck_assert_msg(r.maxrss_kb < bound_kb, "peak RSS %ld kB", r.maxrss_kb);
  unlink(path); /* 64 MiB */
}
END_TEST

/* ==== 3. Only regular files are read; nothing blocks */

/* Makes a FIFO, a socket or a link to /dev/null at rel. */
static void put_special(const char *rel, char kind) {
  char path[4608];
  in_root(path, sizeof path, rel);
  ensure_parent(path);
  unlink(path);
  if (kind == 'f') {
    ck_assert_int_eq(mkfifo(path, 0644), 0);
  } else if (kind == 's') {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    ck_assert_int_ge(s, 0);
    ck_assert(strlen(path) < sizeof a.sun_path);
    strcpy(a.sun_path, path);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    close(s);
  } else {
    ck_assert_int_eq(symlink("/dev/null", path), 0);
  }
}

START_TEST(special_files_are_refused) {
  /* A FIFO must never block: the whole test is bounded. */
  alarm(60);
  BUILD("rules_fifo", {"vae/m.safetensors", NULL, "v", 1},
        {"plain/model.safetensors", NULL, "w", 1});
  static const char kinds[] = {'f', 's', 'd'};
  static const char *const names[] = {"a FIFO", "a socket", "a character device"};
  for (size_t k = 0; k < 3; k++) {
    put_special("model_index.json", kinds[k]);
    expect_open(".", NULL, HOIST_BAD_PIPELINE, NEEDLES("model_index.json", names[k]));
    put_special("plain/config.json", kinds[k]);
    expect_open("plain", NULL, HOIST_BAD_PIPELINE, NEEDLES("config.json", names[k]));
    /* The reader itself. */
    char path[4608];
    hoist_file *f = NULL;
    ck_assert_int_eq(hoist_file_open(NULL, in_root(path, sizeof path, "model_index.json"), &f),
                     HOIST_BAD_PATH);
    ck_assert_ptr_null(f);
    assert_safe_line(hoist_last_error(NULL));
  }
  /* A shard named by an index that is a FIFO: missing as a shard. */
  node mi = {"model_index.json", "{\"vae\":[\"diffusers\",\"V\"]}", NULL, 0};
  put_node(&mi, 0);
  node idx = {"vae/m.safetensors.index.json",
              "{\"weight_map\":{\"v.0\":\"m.safetensors\",\"x\":\"p.safetensors\"}}", NULL, 0};
  put_node(&idx, 0);
  put_special("vae/p.safetensors", 'f');
  expect_open(".", NULL, HOIST_MISSING_SHARD, NEEDLES("p.safetensors", "a FIFO"));
  /* A FIFO named like a weight in a folder is not a weight: skipped. */
  unlink(in_root((char[4608]){0}, 4608, "vae/m.safetensors.index.json"));
  hoist_pipeline *p = open_root(NULL);
  ck_assert_uint_eq(hoist_pipeline_component(p, 0)->file_count, 1);
  hoist_pipeline_close(p);
  /* The CLI: one line, exit 3, no hang. */
  put_special("model_index.json", 'f');
  expect_cli(3, NEEDLES("plan", root));
  expect_cli(3, NEEDLES("load", root));
  expect_cli(3, NEEDLES("inspect", in_root((char[4608]){0}, 4608, "model_index.json")));
  expect_cli(3, NEEDLES("inspect", root));
  expect_cli(3, NEEDLES("inspect", "/dev/null"));
}
END_TEST

/* SIGINT during a load: exit 130 and one line, whatever system call it
 * interrupted. */
START_TEST(ctrl_c_is_cancellation) {
  tu_scratch_dir("rules_sigint", root, sizeof root);
  /* One 48 MiB tensor read in 4 KiB chunks by one thread, verified: long
   * enough to be interrupted. */
  char path[4608];
  uint64_t size = (uint64_t)48 << 20;
  ensure_parent(in_root(path, sizeof path, "m/model.safetensors"));
  fixture_write_file(path, "big", &size, 1, 7);
  int cancelled = 0;
  in_root(path, sizeof path, "m");
  for (int attempt = 0; attempt < 5 && !cancelled; attempt++) {
    int fd;
    pid_t pid = spawn_cli(60, NEEDLES("load", "-v", "--verify", "--threads", "1", "--chunk", "4K",
                                      "--read", "pread", path),
                          &fd);
    /* The engine's start is logged at -v: the load is under way. */
    char err[8192];
    size_t len = 0;
    ssize_t got;
    int sent = 0;
    while ((got = read(fd, err + len, sizeof err - 1 - len)) > 0) {
      len += (size_t)got;
      err[len] = '\0';
      if (!sent && strstr(err, "upload engine") != NULL) {
        kill(pid, SIGINT);
        sent = 1;
      }
    }
    close(fd);
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    ck_assert_msg(WIFEXITED(st), "killed by a signal: %s", err);
    int code = WEXITSTATUS(st);
    ck_assert_msg(code == 0 || code == 130, "exit %d after SIGINT: %s", code, err);
    if (code != 130) continue; /* it finished first: try again */
    cancelled = 1;
    /* Its last line says so, once. */
    char *last = strstr(err, "hoist load: ");
    ck_assert_msg(last != NULL && strchr(last, '\n') == last + strlen(last) - 1, "%s", err);
    ck_assert_msg(strstr(last, "cancelled") != NULL, "%s", last);
  }
  ck_assert_msg(cancelled, "no load was interrupted in 5 attempts");
  unlink(in_root(path, sizeof path, "m/model.safetensors")); /* 48 MiB */
}
END_TEST

/* ==== 4. Names and paths from files are shown on one harmless line */

START_TEST(show_escapes) {
  char b[64];
  ck_assert_str_eq(hoist__show("plain.name", b, sizeof b), "plain.name");
  ck_assert_str_eq(hoist__show("caf\xc3\xa9 \xe6\x97\xa5", b, sizeof b), "caf\xc3\xa9 \xe6\x97\xa5");
  ck_assert_str_eq(hoist__show("a\nb\x1b[2J\x7f", b, sizeof b), "a\\x0ab\\x1b[2J\\x7f");
  ck_assert_str_eq(hoist__show("\xc2\x9b" "31m", b, sizeof b), "\\xc2\\x9b31m");
  ck_assert_str_eq(hoist__show("bad\xff\xe6\x97", b, sizeof b), "bad\\xff\\xe6\\x97");
  /* Cut at a character boundary, with "...", within the buffer. */
  char long_name[200];
  for (size_t i = 0; i + 2 < sizeof long_name; i += 2) memcpy(long_name + i, "\xc3\xa9", 2);
  long_name[sizeof long_name - 2] = '\0';
  hoist__show(long_name, b, 16);
  ck_assert_uint_le(strlen(b), 15);
  ck_assert_str_eq(b + strlen(b) - 3, "...");
  assert_safe_line(b);
  hoist__show("\n\n\n\n\n\n\n\n", b, 16);
  ck_assert_str_eq(b, "\\x0a\\x0a\\x0a...");
}
END_TEST

START_TEST(control_characters_in_names) {
  BUILD("rules_ctrl", {"m/m.safetensors", NULL, "t", 1});
  static const struct {
    const char *model_index;
    const char *needle;
  } names[] = {
      {"{\"a\\nb\":[\"diffusers\",\"V\"]}", "a\\x0ab"},
      {"{\"x\\u001b[2J\":[\"diffusers\",\"V\"]}", "x\\x1b[2J"},
      {"{\"csi\\u009b31m\":[\"diffusers\",\"V\"]}", "csi\\xc2\\x9b31m"},
      {"{\"vae\":[\"diffusers\\u0007\",\"V\"]}", "diffusers\\x07"},
      {"{\"vae\":[\"diffusers\",\"\\u001b]0;pwned\\u0007\"]}", "\\x1b]0;pwned\\x07"},
      {"{\"a\\rb\":[\"diffusers\",\"V\"],\"a\\rb\":[\"diffusers\",\"V\"]}", "a\\x0db"},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    node n = {"m/model_index.json", names[i].model_index, NULL, 0};
    put_node(&n, 0);
    expect_open("m", NULL, HOIST_BAD_PIPELINE, NEEDLES(names[i].needle));
  }
  /* weight_map keys (tensors) and values (shards). */
  node mi = {"m/model_index.json", "{\"vae\":[\"diffusers\",\"V\"]}", NULL, 0};
  put_node(&mi, 0);
  node st = {"m/vae/s.safetensors", NULL, "t", 1};
  put_node(&st, 0);
  node idx = {"m/vae/s.safetensors.index.json",
              "{\"weight_map\":{\"t.0\":\"s.safetensors\",\"evil\\n\\u001b[31m\":\"s.safetensors\"}}",
              NULL, 0};
  put_node(&idx, 0);
  expect_open("m", NULL, HOIST_BAD_INDEX, NEEDLES("evil\\x0a\\x1b[31m"));
  idx.text = "{\"weight_map\":{\"t.0\":\"s\\u001b[8m.safetensors\"}}";
  put_node(&idx, 0);
  expect_open("m", NULL, HOIST_MISSING_SHARD, NEEDLES("s\\x1b[8m.safetensors"));
  /* Tensor names in two plain files. */
  unlink(in_root((char[4608]){0}, 4608, "m/vae/s.safetensors.index.json"));
  node t1 = {"m/vae/s.safetensors", NULL, "n\\u001bm", 1}, t2 = {"m/vae/u.safetensors", NULL, "n\\u001bm", 1};
  put_node(&t1, 0);
  put_node(&t2, 0);
  expect_open("m", NULL, HOIST_BAD_PIPELINE, NEEDLES("'n\\x1bm.0'"));
  /* File names from a folder listing: a newline and broken UTF-8 in the
   * name of a file with a bad header. */
  tu_scratch_dir("rules_ctrl_names", root, sizeof root);
  char path[4608];
  ck_assert_int_eq(mkdir(in_root(path, sizeof path, "w"), 0755), 0);
  tu_write_safetensors(in_root(path, sizeof path, "w/bad\n\xff\x1b[1m.safetensors"), "{\"x\":", NULL,
                       0);
  expect_open("w", NULL, HOIST_HEADER_JSON, NEEDLES("w/bad\\x0a\\xff\\x1b[1m.safetensors"));
  expect_cli(3, NEEDLES("plan", in_root(path, sizeof path, "w")));
  expect_cli(3, NEEDLES("inspect", in_root(path, sizeof path, "w")));
  /* A class name with control characters in config.json only loses the
   * label. */
  tu_scratch_dir("rules_ctrl_cfg", root, sizeof root);
  node cfg = {"c/config.json", "{\"architectures\":[\"T5\\u001b[0m\"]}", NULL, 0};
  node w = {"c/model.safetensors", NULL, "w", 1};
  put_node(&cfg, 0);
  put_node(&w, 0);
  hoist_pipeline *p = NULL;
  ck_assert_int_eq(hoist_pipeline_open(NULL, in_root(path, sizeof path, "c"), NULL, &p), HOIST_OK);
  ck_assert_ptr_null(hoist_pipeline_component(p, 0)->class_name);
  hoist_pipeline_close(p);
}
END_TEST

/* ==== 5. Exit codes: bad paths are bad input (3), bad numbers usage (2) */

START_TEST(path_errors_are_bad_input) {
  ck_assert_int_eq(hoist__path_status(ENOENT), HOIST_NOT_FOUND);
  ck_assert_int_eq(hoist__path_status(ENOTDIR), HOIST_NOT_FOUND);
  ck_assert_int_eq(hoist__path_status(ELOOP), HOIST_BAD_PATH);
  ck_assert_int_eq(hoist__path_status(ENAMETOOLONG), HOIST_BAD_PATH);
  ck_assert_int_eq(hoist__path_status(EACCES), HOIST_BAD_PATH);
  ck_assert_int_eq(hoist__path_status(EIO), HOIST_IO);
  ck_assert_int_eq(hoist__path_status(ENOMEM), HOIST_NO_MEMORY);

  BUILD("rules_paths", {"p/model_index.json", "{\"vae\":[\"diffusers\",\"V\"]}", NULL, 0},
        {"q/w.safetensors", NULL, "w", 1});
  char path[4608], link[4608];
  /* A component folder that is a symbolic link loop. */
  ck_assert_int_eq(symlink("vae", in_root(link, sizeof link, "p/vae")), 0);
  expect_open("p", NULL, HOIST_BAD_PATH, NEEDLES("p/vae", "symbolic links"));
  expect_cli(3, NEEDLES("plan", in_root(path, sizeof path, "p")));
  /* A component name over NAME_MAX. */
  char name[NAME_MAX + 2], text[NAME_MAX + 64];
  memset(name, 'n', NAME_MAX + 1);
  name[NAME_MAX + 1] = '\0';
  snprintf(text, sizeof text, "{\"%s\":[\"diffusers\",\"V\"]}", name);
  node mi = {"p/model_index.json", text, NULL, 0};
  put_node(&mi, 0);
  expect_open("p", NULL, HOIST_BAD_PIPELINE, NEEDLES("NAME_MAX"));
  expect_cli(3, NEEDLES("plan", in_root(path, sizeof path, "p")));
  /* NAME_MAX itself is a name: a missing folder. */
  name[NAME_MAX] = '\0';
  snprintf(text, sizeof text, "{\"%s\":[\"diffusers\",\"V\"]}", name);
  put_node(&mi, 0);
  expect_open("p", NULL, HOIST_OK, NULL);
  /* The pipeline path itself: a loop, a name too long. */
  ck_assert_int_eq(symlink("loop", in_root(link, sizeof link, "loop")), 0);
  expect_open("loop", NULL, HOIST_BAD_PATH, NEEDLES("loop"));
  expect_cli(3, NEEDLES("plan", link));
  expect_cli(3, NEEDLES("load", link));
  char toolong[NAME_MAX + 16];
  memset(toolong, 'x', NAME_MAX + 8);
  toolong[NAME_MAX + 8] = '\0';
  expect_open(toolong, NULL, HOIST_BAD_PATH, NEEDLES("too long"));
  expect_cli(3, NEEDLES("inspect", in_root(path, sizeof path, toolong)));
  /* Permissions mean nothing to root; elsewhere an unreadable file or
   * folder is bad input too. */
  if (geteuid() != 0) {
    in_root(path, sizeof path, "q/w.safetensors");
    ck_assert_int_eq(chmod(path, 0), 0);
    expect_cli(3, NEEDLES("inspect", path));
    expect_open("q", NULL, HOIST_BAD_PATH, NEEDLES("Permission denied"));
    chmod(path, 0644);
    ck_assert_int_eq(chmod(in_root(path, sizeof path, "q"), 0), 0);
    expect_cli(3, NEEDLES("inspect", path));
    chmod(path, 0755);
  }
}
END_TEST

START_TEST(numeric_options_are_usage_errors) {
  tu_scratch_dir("rules_numbers", root, sizeof root);
  char dir[4608];
  in_root(dir, sizeof dir, "out");
  static const char *const max = "18446744073709551615", *const over = "18446744073709551616";
  const char *const *cases[] = {
      NEEDLES("bench", "oom", "--simulate", "--preset", "flux1-dev", "--transient",
              "scratch:18446744073709551615"),
      NEEDLES("bench", "oom", "--simulate", "--preset", "flux1-dev", "--transient",
              "scratch:99999999999999999999G"),
      NEEDLES("bench", "oom", "--simulate", "--preset", "flux1-dev", "--co-tenant",
              "18446744073709551615@0.5"),
      NEEDLES("bench", "oom", "--preset", "flux1-dev", "--max-capacity", "2000T"),
      NEEDLES("bench", "oom", "--preset", "flux1-dev", "--headroom", max),
      NEEDLES("bench", "oom", "--preset", "flux1-dev", "--seed", over),
      NEEDLES("bench", "oom", "--preset", "flux1-dev", "--scale", "1e-310"),
      NEEDLES("bench", "oom", "--preset", "flux1-dev", "--scale", "nan"),
      NEEDLES("bench", "load", "--repeat", over, dir),
      NEEDLES("load", "--capacity", max, dir),
      NEEDLES("load", "--capacity", "99999999999999999999", dir),
      NEEDLES("load", "--capacity", "1125899906842625", dir),
      NEEDLES("load", "--capacity", "16777216T", dir),
      NEEDLES("load", "--chunk", over, dir),
      NEEDLES("load", "--ring", max, dir),
      NEEDLES("load", "--scratch", "-1", dir),
      NEEDLES("load", "--headroom", "9223372036854775808", dir),
      NEEDLES("load", "--threads", "18446744073709551617", dir),
      NEEDLES("plan", "--capacity", max, dir),
      NEEDLES("make-pipeline", "--preset", "flux1-dev", "--seed", over, dir),
      NEEDLES("make-pipeline", "--preset", "flux1-dev", "--threads", "4294967297", dir),
      NEEDLES("make-pipeline", "--preset", "flux1-dev", "--scale", "1e-400", dir),
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_cli(2, cases[i]);
  /* Nothing was written. */
  struct stat st;
  ck_assert_int_ne(stat(dir, &st), 0);
}
END_TEST

static Suite *discover_rules_suite(void) {
  Suite *s = suite_create("discover_rules");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, tensor_in_two_shards);
  tcase_add_test(tc, index_disagrees_with_shards);
  tcase_add_test(tc, two_indexes_must_agree);
  tcase_add_test(tc, plain_files_share_a_tensor);
  tcase_add_test(tc, variants_and_cache_links_follow_the_rule);
  tcase_add_test(tc, side_file_size_caps);
  tcase_add_test(tc, side_file_depth_values_and_nul);
  tcase_add_test(tc, out_of_memory_while_parsing);
  tcase_add_test(tc, plan_memory_at_the_cap);
  tcase_add_test(tc, special_files_are_refused);
  tcase_add_test(tc, ctrl_c_is_cancellation);
  tcase_add_test(tc, show_escapes);
  tcase_add_test(tc, control_characters_in_names);
  tcase_add_test(tc, path_errors_are_bad_input);
  tcase_add_test(tc, numeric_options_are_usage_errors);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return tu_run_suite(discover_rules_suite()); }
