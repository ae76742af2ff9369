/* cli_load_opts.c — options shared by `hoist load` and `hoist bench load`,
 * the stderr progress bar and Ctrl-C cancellation. */
#include "cli_load_opts.h"

#include "hoist_tools.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char cli_load_opts_help[] =
    "  --device D         host (default) or cuda:N\n"
    "  --capacity BYTES   host device capacity (e.g. 24G); default: RAM\n"
    "  --threads N        upload reader threads (default: 3/4 of the cores, at most 12)\n"
    "  --chunk BYTES      upload chunk (default 4M)\n"
    "  --ring BYTES       pinned staging ring limit (default 256M)\n"
    "  --read MODE        auto|pread|mmap|direct|register (default auto)\n"
    "  --variant V        load the V variant's files (e.g. fp16)\n"
    "  --offload LIST     keep these components in pinned host memory\n"
    "                     (names or groups: dit,text_encoder,image_encoder,vae,all)\n"
    "  --fsdp LIST        mark these components FSDP-sharded (never moved by hoist)\n"
    "  --headroom BYTES   device memory kept free (cuda default: max(256M, 2%))\n"
    "  --on-oom POLICY    fail (default) or offload\n"
    "  --dtype T          convert floating tensors to T (bf16|f16|f32) during the upload;\n"
    "                     ints and bool are copied, a float with no conversion to T\n"
    "                     (F64, F8_E8M0, F4, ..) is an error before anything is allocated\n"
    "  --dtype-for N=T    per component (name or group) target, T as above or keep;\n"
    "                     repeatable, later entries win over earlier ones and --dtype\n"
    "  --scratch BYTES    device scratch ring for conversion (default 64M)\n"
    "  --tensors GLOBS    read only the tensors whose names match one of these glob\n"
    "                     patterns (comma-separated, repeatable; fnmatch, case-sensitive,\n"
    "                     '*' matches dots too): only they are admitted and placed; a\n"
    "                     pattern that matches no tensor is an error\n"
    "  --verify           check every chunk on the device against the bytes read\n"
    "                     (block checksums on both sides; before conversion too)\n"
    "  -v, --verbose      log decisions on stderr (offloads, read modes); twice: also\n"
    "                     each component's timings (allocation, upload, verify)\n";

const char cli_manifest_opt_help[] =
    "  --manifest FILE    refuse files that differ from this manifest (hoist manifest):\n"
    "                     names, sizes and headers before anything is allocated, and\n"
    "                     every piece of every tensor as the readers read it (exit 3)\n";
/* hoist_load_options fields and the flags that set them. */
static const struct {
  const char *field, *flag;
} field_flags[] = {{"dtype", "--dtype"},         {"dtype_for", "--dtype-for"},
                   {"offload", "--offload"},     {"fsdp", "--fsdp"},
                   {"headroom", "--headroom"},   {"on_oom", "--on-oom"},
                   {"read_mode", "--read"},      {"scratch_bytes", "--scratch"},
                   {"verify", "--verify"},       {"manifest", "--manifest"},
                   {"piece_bytes", "--piece"},   {"tensors", "--tensors"},
                   {"shard", "--shard"}};

/* The flag for the field named by the len bytes at name; NULL for others. */
static const char *flag_of(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof field_flags / sizeof field_flags[0]; i++)
    if (strlen(field_flags[i].field) == len && memcmp(field_flags[i].field, name, len) == 0)
      return field_flags[i].flag;
  return NULL;
}

const char *cli_flag_message(const char *message, char *buf, size_t size) {
  size_t out = 0;
  for (const char *p = message; *p != '\0' && out + 1 < size;) {
    const char *close = *p == '`' ? strchr(p + 1, '`') : NULL;
    const char *flag = close != NULL ? flag_of(p + 1, (size_t)(close - p - 1)) : NULL;
    if (flag == NULL) {
      buf[out++] = *p++;
      continue;
    }
    out += (size_t)snprintf(buf + out, size - out, "%s", flag);
    if (out >= size) out = size - 1;
    p = close + 1;
  }
  buf[out] = '\0';
  return buf;
}

bool cli_dtype_target(const char *name) {
  hoist_dtype d;
  return hoist__dtype_target_lookup(name, strlen(name), &d) && d != HOIST_DTYPE_KEEP;
}

int cli_load_report(const char *cmd, hoist_runtime *rt, int status) {
  char buf[2048];
  const char *detail = hoist_last_error(rt);
  if (detail == NULL || detail[0] == '\0') detail = hoist_strerror(status);
  fprintf(stderr, "hoist %s: %s\n", cmd, cli_flag_message(detail, buf, sizeof buf));
  return cli_exit_code(status);
}

/* The runtime's log on stderr, one line a message. */
static void log_stderr(void *user, hoist_log_level level, const char *message) {
  static const char *const names[] = {"error", "warning", "info", "debug"};
  char buf[2048];
  fprintf(stderr, "hoist: %s: %s\n", names[level <= HOIST_LOG_DEBUG ? level : HOIST_LOG_DEBUG],
          cli_flag_message(message, buf, sizeof buf));
}

void cli_load_opts_init(cli_load_opts *o) {
  memset(o, 0, sizeof *o);
  o->cfg = (hoist_config)HOIST_CONFIG_INIT;
  o->cfg.log_fn = log_stderr;
  o->cfg.log_level = HOIST_LOG_WARN;
  o->load = (hoist_load_options)HOIST_LOAD_OPTIONS_INIT;
  cli_group_opts_init(&o->group);
}

/* Adds the comma-separated patterns of one --tensors value to o->load.tensors. */
static int add_tensor_patterns(const char *cmd, const char *v, cli_load_opts *o) {
  const size_t len = strlen(v);
  if (len == 0 || v[0] == ',' || v[len - 1] == ',' || strstr(v, ",,") != NULL)
    return cli_usage_error(cmd, "--tensors takes GLOB[,GLOB..] with no empty pattern"), -1;
  if (o->tensors_used + len + 1 > sizeof o->tensors_text)
    return cli_usage_error(cmd, "--tensors: patterns too long"), -1;
  char *text = o->tensors_text + o->tensors_used;
  memcpy(text, v, len + 1);
  o->tensors_used += len + 1;
  for (char *p = text; p != NULL;) {
    if (o->npatterns == CLI_MAX_TENSOR_PATTERNS)
      return cli_usage_error(cmd, "--tensors: more than %d patterns", CLI_MAX_TENSOR_PATTERNS), -1;
    o->tensor_patterns[o->npatterns++] = p;
    p = strchr(p, ',');
    if (p != NULL) *p++ = '\0';
  }
  o->tensor_patterns[o->npatterns] = NULL;
  o->load.tensors = o->tensor_patterns;
  return 1;
}

static const char *value(const char *cmd, int argc, char **argv, int *i) {
  if (*i + 1 >= argc) {
    cli_usage_error(cmd, "%s needs a value", argv[*i]);
    return NULL;
  }
  return argv[++*i];
}

int cli_load_opt(const char *cmd, int argc, char **argv, int *i, cli_load_opts *o) {
  const char *a = argv[*i], *v;
  uint64_t n;
  if (strcmp(a, "--json") == 0) {
    o->json = 1;
    return 1;
  }
  if (strcmp(a, "--verify") == 0) {
    o->load.verify = 1;
    return 1;
  }
  if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0 || strcmp(a, "-vv") == 0) {
    o->cfg.log_level += strcmp(a, "-vv") == 0 ? 2 : 1;
    if (o->cfg.log_level > HOIST_LOG_DEBUG) o->cfg.log_level = HOIST_LOG_DEBUG;
    return 1;
  }
#define VALUE() \
  if ((v = value(cmd, argc, argv, i)) == NULL) return -1
  if (strcmp(a, "--device") == 0) {
    VALUE();
    o->cfg.device = v;
  } else if (strcmp(a, "--capacity") == 0) {
    VALUE();
    if (!cli_parse_bytes(v, &n) || n == 0) return cli_usage_error(cmd, "bad --capacity '%s'", v), -1;
    o->cfg.capacity = n;
  } else if (strcmp(a, "--threads") == 0) {
    VALUE();
    if (!cli_parse_uint(v, 1, 64, &n)) return cli_usage_error(cmd, "--threads takes 1..64"), -1;
    o->cfg.threads = (uint32_t)n;
  } else if (strcmp(a, "--chunk") == 0) {
    VALUE();
    if (!cli_parse_bytes(v, &n) || n < 4096 || n > (1u << 30) || n % 4096 != 0)
      return cli_usage_error(cmd, "--chunk takes a multiple of 4K in [4K, 1G]"), -1;
    o->cfg.chunk_bytes = n;
  } else if (strcmp(a, "--ring") == 0) {
    VALUE();
    if (!cli_parse_bytes(v, &n) || n == 0) return cli_usage_error(cmd, "bad --ring '%s'", v), -1;
    o->cfg.ring_bytes = n;
  } else if (strcmp(a, "--read") == 0) {
    VALUE();
    static const char *modes[] = {"auto", "pread", "mmap", "direct", "register"};
    size_t k = 0;
    while (k < 5 && strcmp(v, modes[k]) != 0) k++;
    if (k == 5) return cli_usage_error(cmd, "--read takes auto|pread|mmap|direct|register"), -1;
    o->load.read_mode = (hoist_read_mode)k;
  } else if (strcmp(a, "--manifest") == 0 && o->manifest_ok) {
    VALUE();
    o->manifest_path = v;
  } else if (strcmp(a, "--variant") == 0) {
    VALUE();
    o->variant = v;
  } else if (strcmp(a, "--offload") == 0) {
    VALUE();
    o->load.offload = v;
  } else if (strcmp(a, "--fsdp") == 0) {
    VALUE();
    o->load.fsdp = v;
  } else if (strcmp(a, "--headroom") == 0) {
    VALUE();
    if (!cli_parse_bytes(v, &n) || n > INT64_MAX) return cli_usage_error(cmd, "bad --headroom '%s'", v), -1;
    o->load.headroom = (int64_t)n;
  } else if (strcmp(a, "--dtype") == 0) {
    VALUE();
    if (!cli_dtype_target(v)) return cli_usage_error(cmd, "--dtype takes bf16, f16 or f32"), -1;
    o->load.dtype = v;
  } else if (strcmp(a, "--dtype-for") == 0) {
    VALUE();
    size_t have = strlen(o->dtype_for), add = strlen(v);
    if (strchr(v, '=') == NULL || strchr(v, ',') != NULL)
      return cli_usage_error(cmd, "--dtype-for takes NAME=DTYPE (one per option)"), -1;
    if (have + add + 2 > sizeof o->dtype_for)
      return cli_usage_error(cmd, "too many --dtype-for entries"), -1;
    if (have > 0) o->dtype_for[have++] = ',';
    memcpy(o->dtype_for + have, v, add + 1);
    o->load.dtype_for = o->dtype_for;
  } else if (strcmp(a, "--tensors") == 0) {
    VALUE();
    return add_tensor_patterns(cmd, v, o);
  } else if (strcmp(a, "--scratch") == 0) {
    VALUE();
    if (!cli_parse_bytes(v, &n) || n < 4096) return cli_usage_error(cmd, "bad --scratch '%s' (at least 4K)", v), -1;
    o->load.scratch_bytes = n;
  } else if (strcmp(a, "--on-oom") == 0) {
    VALUE();
    if (strcmp(v, "fail") == 0)
      o->load.on_oom = HOIST_ON_OOM_FAIL;
    else if (strcmp(v, "offload") == 0)
      o->load.on_oom = HOIST_ON_OOM_OFFLOAD;
    else
      return cli_usage_error(cmd, "--on-oom takes fail or offload"), -1;
  } else {
    return cli_group_opt(cmd, argc, argv, i, &o->group, &o->load); /* ranks (cli_group.c) */
  }
#undef VALUE
  return 1;
}

int cli_load_manifest(const char *cmd, cli_load_opts *o) {
  if (o->manifest_path == NULL || o->manifest != NULL) return HOIST_EXIT_OK;
  int rc = hoist_manifest_load(NULL, o->manifest_path, &o->manifest);
  if (rc != HOIST_OK) return cli_report(cmd, NULL, rc);
  o->load.manifest = o->manifest;
  return HOIST_EXIT_OK;
}

void cli_load_opts_free(cli_load_opts *o) {
  hoist_manifest_close(o->manifest);
  o->manifest = NULL;
  o->load.manifest = NULL;
}

static double last_draw;
static int drew;

void cli_progress_bar(void *user, const char *component, uint64_t done, uint64_t total) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  double now = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
  if (done < total && now - last_draw < 0.1) return;
  last_draw = now;
  int width = 30, fill = total > 0 ? (int)((double)done / (double)total * width) : width;
  char bar[31];
  for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
  bar[width] = '\0';
  char a[32], b[32];
  fprintf(stderr, "\r  %-18.18s [%s] %s / %s  ", component, bar, cli_human_bytes(done, a),
          cli_human_bytes(total, b));
  drew = 1;
}

void cli_progress_done(void) {
  if (drew) fprintf(stderr, "\r%*s\r", 79, "");
  drew = 0;
}

static uint64_t device_used(hoist_runtime *rt) {
  uint64_t free_b = 0, total_b = 0;
  if (hoist__device_mem_info(rt, &free_b, &total_b) != HOIST_OK) return 0;
  return total_b > free_b ? total_b - free_b : 0;
}

void cli_device_peak_start(cli_device_peak *pk, hoist_runtime *rt) {
  pk->rt = rt;
  pk->base_used = device_used(rt);
  pk->peak_used = pk->base_used;
}

void cli_device_peak_progress(void *user, const char *component, uint64_t done, uint64_t total) {
  cli_device_peak *pk = user;
  uint64_t used = device_used(pk->rt);
  if (used > pk->peak_used) pk->peak_used = used;
  if (pk->chain != NULL) pk->chain(pk->chain_user, component, done, total);
}

uint64_t cli_device_peak_bytes(const cli_device_peak *pk) {
  return pk->peak_used > pk->base_used ? pk->peak_used - pk->base_used : 0;
}

static volatile int *cancel_flag;
/* The load's reader threads poll the flag: an atomic store (lock-free, so
 * async-signal-safe) rather than a plain one. */
static void on_signal(int sig) {
  if (cancel_flag != NULL) __atomic_store_n(cancel_flag, 1, __ATOMIC_RELAXED);
  cli_cancel_requested = 1;
}

void cli_install_cancel(volatile int *flag) {
  cancel_flag = flag;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  /* Restarted, system calls never fail with EINTR; the loader sees the
   * flag between chunks (and any failure after it exits 130). */
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}
