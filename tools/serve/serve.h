/* serve.h — the parts of `hoist serve` and what they share.
 *
 * One libuv loop (the main thread) owns every socket: the control socket
 * (control.c: attach, detach, prepare, release, reload, verify over the
 * wire protocol of hoist_wire.h), the HTTP listener (http_server.c over
 * http_proto.c) and the signals (cmd_serve.c).  Work that takes time
 * runs on libuv's thread pool in two lanes (core.c): the load lane (the
 * first load, reloads) and the ops lane (prepare, release, verify, freeing
 * an old generation), each one job at a time, in order.  A job touches the
 * loop's structures only in its after-callback, on the loop; the one thing
 * a loading thread shares while it runs is the progress record, under
 * progress_lock, and it wakes the loop with uv_async_send.
 *
 * A generation is one load of the pipeline.  Clients attach to the current
 * one; a reload makes a new one current beside the old, which is freed
 * once its last client detaches. */
#ifndef HOIST_SERVE_H
#define HOIST_SERVE_H

#include "../cli_load_opts.h"
#include "http_proto.h"
#include "hoist_tools.h"
#include "snapshot.h"

#include <sys/types.h>
#include <uv.h>

#define SERVE_MAX_ALLOW_UIDS 32
#define SERVE_DEFAULT_PORT 9470

typedef struct serve_options {
  cli_load_opts load;
  const char *pipeline;
  char unix_path[108];
  int unix_given;
  char listen_host[64];  /* "" with --listen none */
  int listen_port;
  char *token;           /* from --token-file; NULL: POST over HTTP is forbidden */
  uid_t allow_uid[SERVE_MAX_ALLOW_UIDS];
  size_t n_allow;
  double drain_seconds;
  double read_timeout;   /* HTTP requests and control frames must arrive in this */
  double idle_timeout;   /* an idle keep-alive HTTP connection is closed after this */
  unsigned max_http;
  unsigned max_control;
  int stay_on_failure;
  uint64_t rate;         /* load bytes per second; 0: unlimited */
} serve_options;

typedef struct serve serve;
typedef struct gen gen;
typedef struct ctl_conn ctl_conn;
typedef struct http_conn http_conn;
typedef struct job job;

/* The exported arenas of one component: what ATTACHED and PREPARED send. */
typedef struct shared_arenas {
  size_t n;
  uint64_t bytes[HOIST_WIRE_MAX_ARENAS];
  unsigned char handles[HOIST_WIRE_MAX_ARENAS][HOIST_WIRE_HANDLE_BYTES];
  int fds[HOIST_WIRE_MAX_ARENAS]; /* the arenas' descriptors (borrowed), or -1 for
                                     arenas shared by CUDA IPC handle */
} shared_arenas;

typedef struct gen_comp {
  unsigned prep_refs;    /* clients holding this offloaded component prepared */
  int prepared;          /* its arenas exist and are exported in `arenas` */
  shared_arenas arenas;  /* prepared arenas of an offloaded component */
} gen_comp;

struct gen {
  uint32_t id;
  hoist_pipeline *p;
  hoist_loaded *l;
  double seconds;        /* the load's wall time */
  unsigned clients;      /* attached connections */
  int current;
  int freeing;           /* a free job is queued */
  size_t ncomps;
  gen_comp *comps;
  hoist__wbuf table;      /* the ATTACHED payload (after a 16-byte header slot) */
  int *fds;              /* host: every resident arena's memfd, in table order (borrowed) */
  size_t nfds;
  uint64_t *fingerprint; /* of every tensor when it became ready */
  size_t nfingerprint;
  gen *next;
};

/* Someone waiting for a job: a control request or an HTTP connection. */
typedef struct waiter {
  ctl_conn *ctl;
  uint32_t id;
  http_conn *http;
  struct waiter *next;
} waiter;

typedef enum job_kind { JOB_LOAD, JOB_PREPARE, JOB_RELEASE, JOB_VERIFY, JOB_FREE } job_kind;

typedef struct lane {
  job *head, *tail;
  int busy;
} lane;

/* The record a loading thread updates (under progress_lock). */
typedef struct load_progress {
  int active, reload;
  size_t n;
  struct prog_comp {
    char name[128];
    uint64_t done, total;
    double t0, t1;       /* first and last progress of it */
  } *comps;
  double t0;
  uint64_t done, total;
  hoist_runtime *rt;     /* published once the first load opened the device */
} load_progress;

struct serve {
  serve_options *o;
  uv_loop_t *loop;
  double t_start;
  uv_async_t wake;
  uv_signal_t sig_int, sig_term;
  uv_timer_t drain_timer;
  int signals;           /* stop signals received */
  int stopping, finished;
  int exit_code;
  /* Loading. */
  uv_mutex_t progress_lock;
  load_progress prog;
  volatile int cancel;   /* set by the loop to stop a running load */
  hoist_runtime *rt;     /* the loop's copy, once published */
  lane load_lane, ops_lane;
  int load_failed;       /* the first load failed */
  int last_status;       /* of the first load's failure or the last reload's */
  char last_error[1024];
  int reload_failed;
  /* Generations. */
  gen *gens;             /* newest first */
  gen *current;
  uint32_t next_gen;
  /* Device memory, sampled at most every 100 ms. */
  double mem_at;
  uint64_t mem_free, mem_total;
  int have_mem;
  /* Control socket. */
  int ctl_fd;
  uv_poll_t ctl_poll;
  int ctl_open;
  ctl_conn *ctls;
  unsigned nctl;
  unsigned attached;
  /* HTTP. */
  uv_tcp_t http;
  int http_open;
  int http_port;         /* bound port */
  http_conn *https;
  unsigned nhttp;
  http_proto_ops http_ops;
  /* Counters. */
  uint64_t attaches_total, detaches_total, lost_total, reloads_total;
  uint64_t http_requests_total, http_rejected_total, verify_total, verify_failed_total;
  char verify_last[512];
};

/* core.c */
int serve_init(serve *sv, serve_options *o, uv_loop_t *loop);
void serve_start_load(serve *sv);
void serve_snapshot_take(serve *sv, serve_snapshot *out);
/* Requests from either side; the waiter is answered when the job ends. */
void serve_reload(serve *sv, waiter w);
void serve_verify(serve *sv, waiter w);
void serve_prepare(serve *sv, gen *g, size_t comp, waiter w);
void serve_release_comp(serve *sv, gen *g, size_t comp);
/* A generation lost a client; frees it when nobody needs it. */
void serve_gen_unref(serve *sv, gen *g);
/* Drops every waiter of a closing connection. */
void serve_forget_waiters(serve *sv, ctl_conn *c, http_conn *h);
void serve_begin_shutdown(serve *sv);
void serve_maybe_finish(serve *sv);
/* Emits an event: a JSON line on stdout with --json, else a line on stderr. */
void serve_event(serve *sv, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* control.c */
int control_listen(serve *sv);
void control_close_listener(serve *sv);
/* Attaches a waiting connection now that sv->current exists, or fails it. */
void control_answer_waiters(serve *sv, int status, const char *msg);
void control_notify(serve *sv, uint16_t type, uint32_t value, gen *only);
/* Answers request id of c (after a job). */
void control_reply_error(ctl_conn *c, uint32_t id, int status, const char *msg);
void control_reply_u32u64u64(ctl_conn *c, uint16_t type, uint32_t id, uint32_t a, uint64_t b,
                             uint64_t d);
void control_reply_prepared(ctl_conn *c, uint32_t id, gen *g, size_t comp);
void control_close_all(serve *sv, int only_unattached);
int control_holds_prepared(const ctl_conn *c, gen *g, size_t comp);
int control_attached_to(const ctl_conn *c, const gen *g);
void control_mark_prepared(ctl_conn *c, size_t comp);

/* http_server.c */
int http_listen(serve *sv);
void http_close_listener(serve *sv);
void http_close_all(serve *sv);
void http_answer(http_conn *h, int status, const char *body);

#endif
