/* cli_load_opts.c — options shared by `hoist load` and `hoist bench load`,
 * the stderr progress bar and Ctrl-C cancellation. */
#include "cli_load_opts.h"

#include <signal.h>
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
    "  --verify           compare every tensor on the device with the file\n";

void cli_load_opts_init(cli_load_opts *o) {
  memset(o, 0, sizeof *o);
  o->cfg = (hoist_config)HOIST_CONFIG_INIT;
  o->load = (hoist_load_options)HOIST_LOAD_OPTIONS_INIT;
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
  } else if (strcmp(a, "--on-oom") == 0) {
    VALUE();
    if (strcmp(v, "fail") == 0)
      o->load.on_oom = HOIST_ON_OOM_FAIL;
    else if (strcmp(v, "offload") == 0)
      o->load.on_oom = HOIST_ON_OOM_OFFLOAD;
    else
      return cli_usage_error(cmd, "--on-oom takes fail or offload"), -1;
  } else {
    return 0;
  }
#undef VALUE
  return 1;
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

static volatile int *cancel_flag;
static void on_signal(int sig) {
  if (cancel_flag != NULL) *cancel_flag = 1;
}

void cli_install_cancel(volatile int *flag) {
  cancel_flag = flag;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}
