/* cmd_serve.c — `hoist serve`: parses the options (the load options are
 * hoist load's, through cli_load_opts), opens the control socket and the
 * HTTP listener at once, starts the load in the background and runs the
 * event loop until a signal (or a failed first load) stops it.  The exit
 * code is 0 after a stop, hoist load's code after a failed first load. */
#include "serve.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *out) {
  fprintf(out,
          "usage: hoist serve [OPTIONS] PIPELINE\n\n"
          "Starts at once, loads PIPELINE in the background (the engine, admission and\n"
          "options of hoist load) and keeps it resident until stopped.  Inference workers\n"
          "attach to it over the control socket (hoist_attach) and use the weights in\n"
          "place: one descriptor per arena, mapped read-only by the worker (CUDA\n"
          "virtual memory on a GPU, a memfd on the host backend; CUDA IPC handles where\n"
          "the card cannot share by descriptor, or with HOIST_CUDA_SHARE=ipc).\n\n"
          "serving options:\n"
          "  --unix PATH        control socket (default $XDG_RUNTIME_DIR/hoist/DEV.sock, else\n"
          "                     /run/hoist/DEV.sock; DEV is host or cudaN); mode 0600, peers\n"
          "                     checked with SO_PEERCRED: the server's uid, or --allow-uid\n"
          "  --allow-uid UID    also accept clients of this uid (repeatable; the socket\n"
          "                     becomes 0666 and the uid check does the refusing)\n"
          "  --listen HOST:PORT HTTP endpoint (default 127.0.0.1:%d; port 0 picks a free\n"
          "                     one; [::1]:PORT for IPv6; none: no HTTP)\n"
          "  --token-file F     the bearer token (first line of F) that POST /v1/reload and\n"
          "                     POST /v1/verify must carry; without it they answer 403\n"
          "  --drain SECONDS    on SIGINT/SIGTERM, how long attached clients get to detach\n"
          "                     (default 30); a second signal exits at once\n"
          "  --read-timeout S   an HTTP request, or a control message, must arrive whole\n"
          "                     within S seconds of its first byte (default 10; 408)\n"
          "  --idle-timeout S   idle keep-alive HTTP connections close after S (default 60)\n"
          "  --max-connections N  HTTP connections at once (default 512; more get 503)\n"
          "  --max-clients N    control connections at once (default 1024)\n"
          "  --on-failure MODE  exit (default): a failed first load ends the server with\n"
          "                     hoist load's exit code; stay: keep answering /readyz 500 and\n"
          "                     attaches with the failure until stopped, then exit so\n"
          "  --rate BYTES       load at most BYTES per second (e.g. 2G), to spare the disk\n"
          "                     and link for busy workers during a reload\n"
          "  --json             events as JSON lines on stdout: listening, ready, reloaded,\n"
          "                     failed, reload_failed, stopping, stopped\n\n"
          "load options (as hoist load):\n%s\n"
          "HTTP endpoints:\n"
          "  GET /healthz       200 while the process lives\n"
          "  GET /readyz        200 once every component is resident; 503 with progress\n"
          "                     while loading; 500 naming the failure\n"
          "  GET /v1/status     JSON: state, per-component bytes done/total, residency,\n"
          "                     GB/s, device memory used/free, clients, generations\n"
          "  GET /metrics       Prometheus text: bytes loaded, load seconds, component\n"
          "                     states, device bytes, clients, counters\n"
          "  POST /v1/reload    load the folder again beside the current generation (when\n"
          "                     admission allows; else 507 with the numbers); new attaches\n"
          "                     get it, the old one is freed when its last client detaches\n"
          "  POST /v1/verify    re-check the block checksum of every tensor in every arena\n"
          "                     against the fingerprint taken when it became ready\n"
          "  Malformed requests get 400, oversized ones 413/414/431, slow ones 408, and the\n"
          "  connection closes; the load is not disturbed.\n\n"
          "The control socket speaks the protocol of include/hoist_wire.h: attach, detach,\n"
          "prepare/release of offloaded components, reload, verify.\n\n"
          "exit codes: 0 stopped by a signal; those of hoist load when the first load fails\n"
          "(3 invalid pipeline, 4 does not fit, 5 device); 1 when a socket cannot be opened;\n"
          "2 usage; 130 a second signal.\n",
          SERVE_DEFAULT_PORT, cli_load_opts_help);
}

static int parse_listen(const char *v, serve_options *o) {
  if (strcmp(v, "none") == 0) {
    o->listen_host[0] = '\0';
    return 0;
  }
  const char *colon = strrchr(v, ':');
  if (colon == NULL) return -1;
  const char *host = v;
  size_t hlen = (size_t)(colon - v);
  if (hlen >= 2 && v[0] == '[' && v[hlen - 1] == ']') {
    host = v + 1;
    hlen -= 2;
  }
  uint64_t port;
  if (hlen == 0 || hlen >= sizeof o->listen_host || !cli_parse_uint(colon + 1, 0, 65535, &port))
    return -1;
  memcpy(o->listen_host, host, hlen);
  o->listen_host[hlen] = '\0';
  o->listen_port = (int)port;
  return 0;
}

/* The token: the first line of the file, visible ASCII only. */
static int read_token(const char *path, serve_options *o) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    fprintf(stderr, "hoist serve: --token-file %s: %s\n", path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  if (st.st_mode & 077)
    fprintf(stderr, "hoist serve: warning: %s is readable by other users (chmod 600 it)\n", path);
  char buf[HTTP_MAX_TOKEN + 2];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n < 0) n = 0;
  buf[n] = '\0';
  size_t len = strcspn(buf, "\r\n");
  buf[len] = '\0';
  for (size_t i = 0; i < len; i++)
    if (buf[i] < 0x21 || buf[i] > 0x7e) len = 0;
  if (len == 0 || len > HTTP_MAX_TOKEN || (size_t)n == sizeof buf - 1) {
    fprintf(stderr,
            "hoist serve: --token-file %s: the first line must be a token of 1 to %u visible "
            "ASCII characters\n",
            path, HTTP_MAX_TOKEN);
    return -1;
  }
  o->token = strdup(buf);
  return o->token != NULL ? 0 : -1;
}

static int parse_seconds(const char *v, double max, double *out) {
  char *end = NULL;
  errno = 0;
  double d = strtod(v, &end);
  if (errno != 0 || end == v || *end != '\0' || !(d >= 0) || d > max) return -1;
  *out = d;
  return 0;
}

/* Returns -1 after a usage error, 1 when it printed help, 0 when parsed. */
static int parse(int argc, char **argv, serve_options *o) {
  cli_load_opts_init(&o->load);
  snprintf(o->listen_host, sizeof o->listen_host, "127.0.0.1");
  o->listen_port = SERVE_DEFAULT_PORT;
  o->drain_seconds = 30;
  o->read_timeout = 10;
  o->idle_timeout = 60;
  o->max_http = 512;
  o->max_control = 1024;
  const char *token_file = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 1;
    }
    int r = cli_load_opt("serve", argc, argv, &i, &o->load);
    if (r < 0) return -1;
    if (r > 0) continue;
    if (a[0] != '-') {
      if (o->pipeline != NULL) return cli_usage_error("serve", "one PIPELINE only"), -1;
      o->pipeline = a;
      continue;
    }
    if (i + 1 >= argc) return cli_usage_error("serve", "%s needs a value or is unknown", a), -1;
    const char *v = argv[++i];
    uint64_t n;
    if (strcmp(a, "--unix") == 0) {
      if (strlen(v) == 0 || strlen(v) >= sizeof o->unix_path)
        return cli_usage_error("serve", "--unix takes a path of 1 to %zu bytes",
                               sizeof o->unix_path - 1), -1;
      snprintf(o->unix_path, sizeof o->unix_path, "%s", v);
      o->unix_given = 1;
    } else if (strcmp(a, "--listen") == 0) {
      if (parse_listen(v, o) != 0)
        return cli_usage_error("serve", "--listen takes HOST:PORT, [IPv6]:PORT or none"), -1;
    } else if (strcmp(a, "--token-file") == 0) {
      token_file = v;
    } else if (strcmp(a, "--allow-uid") == 0) {
      if (!cli_parse_uint(v, 0, UINT32_MAX - 1, &n) || o->n_allow == SERVE_MAX_ALLOW_UIDS)
        return cli_usage_error("serve", "--allow-uid takes a numeric uid (at most %d)",
                               SERVE_MAX_ALLOW_UIDS), -1;
      o->allow_uid[o->n_allow++] = (uid_t)n;
    } else if (strcmp(a, "--drain") == 0) {
      if (parse_seconds(v, 86400, &o->drain_seconds) != 0)
        return cli_usage_error("serve", "--drain takes seconds in [0, 86400]"), -1;
    } else if (strcmp(a, "--read-timeout") == 0) {
      if (parse_seconds(v, 3600, &o->read_timeout) != 0 || o->read_timeout < 0.01)
        return cli_usage_error("serve", "--read-timeout takes seconds in [0.01, 3600]"), -1;
    } else if (strcmp(a, "--idle-timeout") == 0) {
      if (parse_seconds(v, 86400, &o->idle_timeout) != 0 || o->idle_timeout < 0.01)
        return cli_usage_error("serve", "--idle-timeout takes seconds in [0.01, 86400]"), -1;
    } else if (strcmp(a, "--max-connections") == 0) {
      if (!cli_parse_uint(v, 1, 100000, &n))
        return cli_usage_error("serve", "--max-connections takes 1..100000"), -1;
      o->max_http = (unsigned)n;
    } else if (strcmp(a, "--max-clients") == 0) {
      if (!cli_parse_uint(v, 1, 100000, &n))
        return cli_usage_error("serve", "--max-clients takes 1..100000"), -1;
      o->max_control = (unsigned)n;
    } else if (strcmp(a, "--on-failure") == 0) {
      if (strcmp(v, "exit") != 0 && strcmp(v, "stay") != 0)
        return cli_usage_error("serve", "--on-failure takes exit or stay"), -1;
      o->stay_on_failure = strcmp(v, "stay") == 0;
    } else if (strcmp(a, "--rate") == 0) {
      if (!cli_parse_bytes(v, &o->rate) || o->rate == 0)
        return cli_usage_error("serve", "bad --rate '%s'", v), -1;
    } else {
      return cli_usage_error("serve", "unknown option %s", a), -1;
    }
  }
  if (o->pipeline == NULL) return cli_usage_error("serve", "missing PIPELINE"), -1;
  if (token_file != NULL && read_token(token_file, o) != 0) return -1;
  return 0;
}

static void on_signal(uv_signal_t *h, int signum) {
  serve *sv = h->data;
  if (++sv->signals > 1) {
    fprintf(stderr, "hoist serve: second signal, exiting now\n");
    _exit(HOIST_EXIT_CANCELLED);
  }
  fprintf(stderr, "hoist serve: %s: stopping (again to exit at once)\n",
          signum == SIGINT ? "SIGINT" : "SIGTERM");
  serve_begin_shutdown(sv);
}

int cmd_serve(int argc, char **argv) {
  serve_options o;
  memset(&o, 0, sizeof o);
  int r = parse(argc, argv, &o);
  if (r != 0) {
    free(o.token);
    return r > 0 ? HOIST_EXIT_OK : HOIST_EXIT_USAGE;
  }
  signal(SIGPIPE, SIG_IGN);
  uv_loop_t loop;
  serve sv;
  if (uv_loop_init(&loop) != 0 || serve_init(&sv, &o, &loop) != 0) {
    fprintf(stderr, "hoist serve: cannot start the event loop\n");
    free(o.token);
    return HOIST_EXIT_FAILURE;
  }
  int code = HOIST_EXIT_FAILURE;
  uv_signal_init(&loop, &sv.sig_int);
  uv_signal_init(&loop, &sv.sig_term);
  sv.sig_int.data = sv.sig_term.data = &sv;
  uv_signal_start(&sv.sig_int, on_signal, SIGINT);
  uv_signal_start(&sv.sig_term, on_signal, SIGTERM);
  if (control_listen(&sv) != 0 || http_listen(&sv) != 0) {
    sv.exit_code = HOIST_EXIT_FAILURE;
    serve_begin_shutdown(&sv);
  } else {
    char http[96] = "null";
    if (o.listen_host[0] != '\0')
      snprintf(http, sizeof http, strchr(o.listen_host, ':') ? "\"[%s]:%d\"" : "\"%s:%d\"",
               o.listen_host, sv.http_port);
    cJSON *path = cJSON_CreateString(o.unix_path);
    char *pq = path != NULL ? cJSON_PrintUnformatted(path) : NULL;
    serve_event(&sv, "listening", "\"unix\":%s,\"http\":%s,\"pid\":%d", pq != NULL ? pq : "\"\"",
                http, (int)getpid());
    cJSON_free(pq);
    cJSON_Delete(path);
    if (!o.load.json)
      fprintf(stderr, "hoist serve: control socket %s, http %.*s; loading %s\n", o.unix_path,
              http[0] == '"' ? (int)strlen(http) - 2 : (int)strlen(http),
              http[0] == '"' ? http + 1 : http, o.pipeline);
    serve_start_load(&sv);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  code = sv.exit_code;
  if (uv_loop_close(&loop) != 0) {
    /* A handle left open is a bug; close what is left rather than hang. */
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
  }
  uv_mutex_destroy(&sv.progress_lock);
  free(o.token);
  return code;
}
