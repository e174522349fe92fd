#include "ts_version.h"
#include "ts_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ts_component.h"
#include "ts_conn.h"
#include "ts_http.h"
#include "ts_listen.h"
#include "ts_loop.h"
#include "ts_log.h"
#include "ts_metrics.h"
#include "ts_pool.h"
#include "ts_registry.h"
#include "ts_wagi.h"

#define LINGER_MS 2000
#define ACCESS_FLUSH_MS 100
#define ACCESS_FLUSH_BYTES 32768
#define MAX_OUT_HEADERS 256
#define SWEEP_MS 1000
#define DRAIN_SWEEP_MS 50
#define ACCEPT_PAUSE_MS 50 /* at the fd or connection limit, accepting pauses this long */
#ifndef SPIN_US
#define SPIN_US 50 /* a guest thread looks for more work this long before sleeping */
#endif
/* Short guests run on the I/O thread itself ("inline"): handing a job to a
 * guest thread and back costs two cross-thread wake-ups and context
 * switches, more than a trivial guest's whole run. An app qualifies after
 * INLINE_STREAK runs in a row under INLINE_SHORT_US each; one I/O turn runs
 * guests inline for at most INLINE_TURN_US, the rest go to the pool. A guest
 * that runs inline longer than TAKEOVER_US (seen by ts_server_watch, called
 * on every epoch tick) gets its worker's event loop handed to a helper
 * thread until it returns, so it stalls no other connection for longer than
 * that plus a tick. */
#ifndef INLINE_SHORT_US
#define INLINE_SHORT_US 1000
#endif
#define INLINE_STREAK 8
#define INLINE_TURN_US 2000
#define TAKEOVER_US 5000
/* Inline runs at once, over all workers: the pooling allocator has slots for
 * one instance per guest thread plus 2 (ts_engine.c, pool_slots), so at
 * most 2 instances may run outside the guest threads. */
#define INLINE_MAX 2

_Static_assert(TS_WAGI_ADDR_MAX == INET6_ADDRSTRLEN, "ts_wagi.h's address size");

typedef ts_conn conn;
struct ts_job;

/* One I/O thread: its event loop, its connections, and the jobs it hands to
 * the guest threads. Everything here is touched by this thread only, except
 * the completion queue (done_mu). */
typedef struct worker {
  int id;
  ts_loop loop;
  ts_loop_watch listen_watch, unix_watch, drain_watch, done_watch;
  int evfd;                        /* eventfd: drain */
  int donefd;                      /* eventfd: guest threads posted finished jobs */
  int t_sweep, t_access, t_accept; /* timers: idle sweep, access-log flush, accept resume */
  pthread_mutex_t done_mu;
  struct ts_job *done_head, *done_tail;
  int idle;                           /* waiting with no completion pending (done_mu) */
  struct ts_job *free_jobs;           /* reusable jobs (their env arenas stay allocated) */
  struct ts_job *sub_head, *sub_tail; /* jobs made this loop iteration, submitted together */
  pthread_t thread;
  /* A guest running inline on this worker's thread, and the helper thread
   * that runs the event loop meanwhile when it takes too long. Only one of
   * the two threads touches the worker's state at any time: the helper is
   * created after the guest started and joined before the thread that ran
   * it goes on (own_mu orders the watchdog's check against the end). */
  pthread_mutex_t own_mu;
  _Atomic uint64_t inline_t0; /* µs when the inline guest started; 0: none */
  int helper_on;              /* own_mu */
  _Atomic int helper_stop;
  pthread_t helper;
  conn *conns;
  conn *dead; /* closed this iteration: freed before the next wait */
  int nconns;
  int accept_paused; /* listener out of the loop until the accept timer */
  int draining, drain_forced, exit;
  uint64_t drain_deadline;
  ts_header *hdrs;
  ts_header out_hdrs[MAX_OUT_HEADERS];
  ts_buf access;
  time_t date_sec;
  char date[64], clf_date[64];
} worker;

static const ts_config *g_cfg;
static ts_engine *g_engine;
static int g_listen_fd = -1;
static int g_unix_fd = -1;       /* listen-unix, or -1 */
static unsigned long g_unix_ino; /* its socket file, removed at exit if still ours */
static worker *g_workers;
static int g_nworkers;
static ts_http_limits g_limits;
static size_t g_rbuf_limit;
static _Atomic int g_open_conns;        /* client connections of all workers */
static _Atomic int g_watch_ready;       /* the workers exist: ts_server_watch may look at them */
static _Atomic int g_inline_now;        /* guests running inline now, all workers (at most INLINE_MAX) */
static _Thread_local int t_loop_helper; /* this thread runs a worker's loop for a guest running inline */
static int g_max_conns;                 /* max-connections, resolved */

/* One guest run, handed from the I/O thread that owns the connection to a
 * guest thread and back. Views (method, target, body) point into the
 * connection's read buffer, which stays put while the job runs: the
 * connection neither reads nor parses until the job is back. */
typedef struct ts_job {
  struct ts_job *next;
  ts_pool_item item; /* in the guest pool; item.app = &m.app->pool */
  struct worker *w;
  conn *c;
  ts_match m; /* holds a version reference: a swap meanwhile does not free it */
  ts_wagi_env env;
  const char *body;
  size_t body_len;
  size_t end; /* where the next pipelined request starts in c->rbuf */
  ts_str method, target;
  int minor;
  uint64_t t0;
  int build_failed;
  int rejected; /* the app's queue was full: 503, never run */
  ts_run_result res;
  ts_run_output out;
} job;

/* The guest threads (ts_pool.c): per-app queues served round-robin, with a
 * concurrency limit and a bounded queue per app; a connection has at most
 * one job, so the total is also bounded by the number of connections. */
static ts_pool g_pool;
static const char CONTINUE_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* ---------------------------------------------------------------- setup --- */

int ts_server_listen(const ts_config *cfg, char *err, size_t errlen) {
  g_listen_fd = ts_listen_open(cfg, err, errlen);
  if (g_listen_fd < 0) return -1;
  if (cfg->listen_unix[0]) {
    g_unix_fd = ts_listen_open_unix(cfg, &g_unix_ino, err, errlen);
    if (g_unix_fd < 0) {
      close(g_listen_fd);
      g_listen_fd = -1;
      return -1;
    }
  }
  return 0;
}

/* ---------------------------------------------------------- connections --- */

static int out_room(const conn *c) { return ts_conn_out_room(c, g_cfg->max_conn_output); }

static void update_events(worker *w, conn *c) {
  if (!c->closed)
    ts_loop_watch_set(&w->loop, &c->watch, ts_conn_wanted_events(c, g_cfg->max_conn_output, g_rbuf_limit));
}

/* Close the socket now; the memory goes when no guest thread uses the
 * buffer and no event of this batch can point to it (freed before the next
 * wait: a handler never frees a connection, it queues it). */
static void conn_close(worker *w, conn *c) {
  if (c->dead) return;
  if (c->watch.fd >= 0) close(c->watch.fd); /* also removes it from the epoll set */
  c->watch.fd = -1;
  c->closed = 1;
  ts_conn_drop_output(c);
  if (c->job) return; /* a guest thread still uses c->rbuf: again when the job returns */
  if (c->prev) c->prev->next = c->next;
  else w->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  w->nconns--;
  atomic_fetch_sub_explicit(&g_metrics.connections_active, 1, memory_order_relaxed);
  atomic_fetch_sub_explicit(&g_open_conns, 1, memory_order_relaxed);
  c->dead = 1;
  c->dead_next = w->dead;
  w->dead = c;
}

static void free_dead(worker *w) {
  while (w->dead) {
    conn *c = w->dead;
    w->dead = c->dead_next;
    free(c->rbuf);
    free(c);
  }
}

static void start_linger(worker *w, conn *c) {
  /* Half-close and read what the client still sends: closing with unread
   * input would reset the connection and could destroy our last response. */
  shutdown(c->watch.fd, SHUT_WR);
  c->lingering = 1;
  c->last_ms = ts_now_ms();
  update_events(w, c);
}

/* Write what is queued. Returns -1 when the connection was closed. */
static int conn_flush(worker *w, conn *c) {
  if (ts_conn_write(c) < 0) {
    conn_close(w, c);
    return -1;
  }
  if (!c->niov && c->close_after_write && !c->lingering && !c->job) start_linger(w, c);
  else update_events(w, c);
  return 0;
}

/* ------------------------------------------------------------- responses --- */

static void refresh_dates(worker *w) {
  time_t now = time(NULL);
  if (now == w->date_sec) return;
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(w->date, sizeof w->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  strftime(w->clf_date, sizeof w->clf_date, "%d/%b/%Y:%H:%M:%S +0000", &tm);
  w->date_sec = now;
}

/* Queue one response (see ts_conn_queue_response); out of memory closes
 * the connection after what is already queued. */
static void queue_response(worker *w, conn *c, int minor, int status, ts_str reason, const ts_header *hdrs, size_t nh,
                           char *body_owner, const char *body, size_t body_len, int head_only) {
  refresh_dates(w);
  ts_conn_queue_response(c, w->date, minor, status, reason, hdrs, nh, body_owner, body, body_len, head_only);
}

static void access_log(worker *w, conn *c, const ts_request *req, int status, size_t bytes, uint64_t us,
                       const char *app) {
  refresh_dates(w);
  if (req) {
    char method[64], target[2048];
    ts_log_escape(method, sizeof method, req->method.p, req->method.n);
    ts_log_escape(target, sizeof target, req->target.p, req->target.n);
    /* seconds with 6 decimals, from integers: no floating-point formatting per request */
    ts_buf_printf(&w->access, "%s - - [%s] \"%s %s HTTP/1.%d\" %d %zu %llu.%06llu %s\n", c->peer, w->clf_date, method,
                  target, req->minor, status, bytes, (unsigned long long)(us / 1000000),
                  (unsigned long long)(us % 1000000), app && app[0] ? app : "-");
  } else {
    ts_buf_printf(&w->access, "%s - - [%s] \"-\" %d %zu %llu.%06llu -\n", c->peer, w->clf_date, status, bytes,
                  (unsigned long long)(us / 1000000), (unsigned long long)(us % 1000000));
  }
  if (w->access.n > ACCESS_FLUSH_BYTES) {
    ts_log_access_write(w->access.p, w->access.n);
    w->access.n = 0;
  } else if (!ts_loop_timer_armed(&w->loop, w->t_access)) {
    ts_loop_timer_arm(&w->loop, w->t_access, ACCESS_FLUSH_MS, 0);
  }
}

static void send_error(worker *w, conn *c, const ts_request *req, int status, int close_conn) {
  char body[128];
  int n = snprintf(body, sizeof body, "%d %s\n", status, ts_http_reason(status));
  char *copy = malloc((size_t)n);
  if (copy) memcpy(copy, body, (size_t)n);
  static const ts_header ct = {{"Content-Type", 12}, {"text/plain; charset=utf-8", 25}};
  if (close_conn) c->close_after_write = 1;
  int head_only = req && ts_str_eq(req->method, "HEAD");
  queue_response(w, c, req ? req->minor : 1, status, (ts_str){0, 0}, &ct, 1, copy, copy, copy ? (size_t)n : 0,
                 head_only);
  ts_metrics_status(&g_metrics.other, status);
  access_log(w, c, req, status, (size_t)n, 0, NULL);
}

/* -------------------------------------------------------------- requests --- */

static const char *run_result_name(ts_run_result r) {
  switch (r) {
  case TS_RUN_TIMEOUT: return "timeout";
  case TS_RUN_TRAP: return "trap";
  case TS_RUN_EXIT: return "exit";
  case TS_RUN_OUTPUT_LIMIT: return "output limit";
  default: return "error";
  }
}

/* Admin and previews are for the box itself: never for remote peers, nor for
 * requests a local proxy forwarded (nginx adds these headers when told to). */
static int box_local(const conn *c, const ts_request *req) {
  int proxied = ts_http_find_header(req, "x-forwarded-for") || ts_http_find_header(req, "x-real-ip") ||
                ts_http_find_header(req, "forwarded");
  return c->peer_loopback && !proxied;
}

static void handle_admin(worker *w, conn *c, const ts_request *req, uint64_t t0) {
  ts_buf b = {0};
  const char *ctype = "text/plain";
  int status;
  if (!box_local(c, req)) {
    ts_buf_puts(&b, "404 Not Found\n");
    status = 404;
  } else {
    status = ts_admin_handle(req->path.p, req->path.n, req->method, &b, &ctype);
  }
  ts_header h = {{"Content-Type", 12}, {ctype, strlen(ctype)}};
  size_t len;
  char *body = ts_buf_steal(&b, &len);
  queue_response(w, c, req->minor, status, (ts_str){0, 0}, &h, 1, body, body, len, ts_str_eq(req->method, "HEAD"));
  ts_metrics_status(&g_metrics.other, status);
  access_log(w, c, req, status, len, ts_now_us() - t0, "_tiramisu");
}

/* ------------------------------------------------------------ guest pool --- */

static job *job_get(worker *w) {
  job *j = w->free_jobs;
  if (j) w->free_jobs = j->next;
  else j = calloc(1, sizeof *j);
  return j;
}

static void job_put(worker *w, job *j) {
  ts_buf_free(&j->out.out);
  j->c = NULL;
  j->next = w->free_jobs;
  w->free_jobs = j;
}

static void pool_submit(worker *w, job *j) {
  j->next = NULL;
  if (w->sub_tail) w->sub_tail->next = j;
  else w->sub_head = j;
  w->sub_tail = j;
}

static job *job_of(ts_pool_item *it) { return (job *)(void *)((char *)it - offsetof(job, item)); }

static void job_done(worker *w, job *j);
static void run_inline(worker *w, job *j);

/* Run j inline if fewer than INLINE_MAX run inline now and its app has a
 * free slot; returns whether it ran. */
static int try_inline(worker *w, job *j) {
  int ran = 0;
  if (atomic_fetch_add(&g_inline_now, 1) < INLINE_MAX && ts_pool_try_begin(&g_pool, j->item.app)) {
    run_inline(w, j);
    ran = 1;
  }
  atomic_fetch_sub(&g_inline_now, 1);
  return ran;
}

/* Queue this iteration's jobs with one lock (before the worker may sleep).
 * Jobs their app's queue refused are answered (503) right here; answering
 * may parse pipelined requests and make new jobs, so loop until none.
 * Jobs of apps whose runs are short run inline instead (see INLINE_SHORT_US),
 * after the others were handed to the pool, within INLINE_TURN_US a turn. */
static void pool_flush(worker *w) {
  uint64_t turn_end = 0;
  while (w->sub_head) {
    ts_pool_item *head = NULL, **link = &head;
    job *here = NULL, **here_link = &here, *next;
    if (!turn_end) turn_end = ts_now_us() + INLINE_TURN_US;
    int may_inline = !t_loop_helper && ts_now_us() < turn_end;
    for (job *j = w->sub_head; j; j = next) {
      next = j->next;
      if (may_inline && ts_pool_app_runs_short(j->item.app, INLINE_STREAK)) {
        *here_link = j;
        here_link = &j->next;
        continue;
      }
      *link = &j->item;
      link = &j->item.next;
    }
    *link = NULL;
    *here_link = NULL;
    w->sub_head = w->sub_tail = NULL;
    ts_pool_item *rejected = head ? ts_pool_submit(&g_pool, head) : NULL;
    while (rejected) {
      job *j = job_of(rejected);
      rejected = rejected->next;
      j->rejected = 1;
      job_done(w, j);
    }
    for (job *j = here; j; j = next) {
      next = j->next;
      if (ts_now_us() < turn_end && try_inline(w, j)) continue;
      j->next = NULL; /* out of time this turn, or the app is at its limit: the pool queues it */
      ts_pool_item *rej = ts_pool_submit(&g_pool, &j->item);
      if (rej) {
        j->rejected = 1;
        job_done(w, j);
      }
    }
  }
}

/* Hand a finished job back to the I/O thread that owns its connection. */
static void post_done(job *j) {
  worker *w = j->w;
  j->next = NULL;
  pthread_mutex_lock(&w->done_mu);
  /* Wake the worker only when it sleeps: a busy one takes the list before
   * its next epoll_wait. One write per sleep. */
  int wake = w->idle;
  w->idle = 0;
  if (w->done_tail) w->done_tail->next = j;
  else w->done_head = j;
  w->done_tail = j;
  pthread_mutex_unlock(&w->done_mu);
  if (wake) {
    uint64_t one = 1;
    ssize_t r = write(w->donefd, &one, sizeof one);
    (void)r;
  }
}

/* Run the job's guest (on a guest thread, or inline on its I/O thread). */
static void guest_exec(job *j) {
  ts_app *app = j->m.app;
  /* The deadline runs from the complete request, so time queued counts. */
  ts_run_input in = {.argv = j->env.argv,
                     .argc = j->env.argc,
                     .env_names = j->env.names,
                     .env_values = j->env.values,
                     .envc = j->env.envc,
                     .stdin_data = j->body,
                     .stdin_len = j->body_len,
                     .stderr_log = app->log,
                     .max_output = g_cfg->max_output,
                     .deadline_us = j->t0 + g_cfg->timeout_ms * 1000u};
  const wasmtime_instance_pre_t *pre = j->m.version->pre;
  if (j->m.has_map) { /* an app map route: its entry point, folders and limits */
    in.entrypoint = j->m.map.entrypoint;
    if (j->m.map.route.timeout_ms > 0) in.deadline_us = j->t0 + (uint64_t)j->m.map.route.timeout_ms * 1000u;
    if (j->m.map.route.memory_mb > 0) in.memory_bytes = (uint64_t)j->m.map.route.memory_mb << 20;
    if (j->m.map.route.npreopens && (j->m.version->pre_files || j->m.version->component)) {
      in.preopens = j->m.map.route.preopens;
      in.npreopens = j->m.map.route.npreopens;
      pre = j->m.version->pre_files; /* NULL for a component: ts_component_run takes the folders */
    }
  }
  memset(&j->out, 0, sizeof j->out);
  uint64_t start = ts_now_us();
  j->res = j->m.version->component ? ts_component_run(g_engine, j->m.version->component, &in, &j->out)
                                   : ts_engine_run(g_engine, pre, &in, &j->out);
  ts_pool_note_run(&app->pool, ts_now_us() - start, INLINE_SHORT_US);
}

/* On a guest thread: run the job's guest, hand the result back. */
static void guest_run(ts_pool_item *it, void *arg) {
  (void)arg;
  job *j = job_of(it);
  guest_exec(j);
  post_done(j);
}

/* The helper thread: runs w's event loop while w's own thread is in a long
 * inline guest; stops when told (the guest returned). */
static void *loop_helper_main(void *arg) {
  worker *w = arg;
  t_loop_helper = 1; /* never runs guests inline itself */
  while (!atomic_load(&w->helper_stop) && !w->exit) ts_loop_run_once(&w->loop, SWEEP_MS);
  return NULL;
}

/* Run j's guest on this I/O thread (its app slot was taken by
 * ts_pool_try_begin), then answer it. */
static void run_inline(worker *w, job *j) {
  ts_pool_app *a = j->item.app;
  atomic_store(&w->inline_t0, ts_now_us());
  guest_exec(j);
  pthread_mutex_lock(&w->own_mu);
  atomic_store(&w->inline_t0, 0);
  int helper = w->helper_on;
  w->helper_on = 0;
  pthread_mutex_unlock(&w->own_mu);
  if (helper) { /* take the loop back: wake the helper from its wait and wait for it */
    atomic_store(&w->helper_stop, 1);
    uint64_t one = 1;
    ssize_t r = write(w->donefd, &one, sizeof one);
    (void)r;
    pthread_join(w->helper, NULL);
    atomic_store(&w->helper_stop, 0);
  }
  ts_pool_end(&g_pool, a);
  job_done(w, j);
}

/* An inline guest past TAKEOVER_US gets a helper thread for its worker's
 * loop. Called on the epoch ticker's thread, every TS_EPOCH_TICK_MS. */
void ts_server_watch(void) {
  if (!atomic_load(&g_watch_ready)) return;
  uint64_t now = ts_now_us();
  for (int i = 0; i < g_nworkers; i++) {
    worker *w = &g_workers[i];
    uint64_t t0 = atomic_load(&w->inline_t0);
    if (!t0 || now - t0 < TAKEOVER_US) continue;
    pthread_mutex_lock(&w->own_mu);
    if (atomic_load(&w->inline_t0) && !w->helper_on) {
      if (pthread_create(&w->helper, NULL, loop_helper_main, w) == 0) w->helper_on = 1;
      else ts_log_warn("worker %d: cannot start a helper thread while a guest runs inline", w->id);
    }
    pthread_mutex_unlock(&w->own_mu);
  }
}

/* -------------------------------------------------------------- requests --- */

/* The guest's result (or a failure before it ran) becomes the response; on
 * the I/O thread, like everything that touches the connection. */
static void finish_request(worker *w, conn *c, job *j) {
  ts_app *app = j->m.app;
  int status;
  ts_str reason = {0, 0};
  size_t nh = 0;
  char *out_owner = NULL;
  const char *out_body = NULL;
  size_t out_len = 0;
  static const ts_header ct_text = {{"Content-Type", 12}, {"text/plain; charset=utf-8", 25}};
  static const ts_header busy_hdrs[2] = {{{"Content-Type", 12}, {"text/plain; charset=utf-8", 25}},
                                         {{"Retry-After", 11}, {"1", 1}}};
  const ts_header *hdrs = &ct_text;
  char errbody[128], method[64], target[512], whobuf[TS_APP_NAME_MAX + 16];
  /* A preview's requests are logged and counted apart from the live app's. */
  const char *who = app->name;
  if (j->m.preview) {
    snprintf(whobuf, sizeof whobuf, "preview:%s", app->name);
    who = whobuf;
  }
  /* method and target for error lines, escaped only when there is one */
#define ESCAPE_REQUEST()                                                                                               \
  (ts_log_escape(method, sizeof method, j->method.p, j->method.n),                                                     \
   ts_log_escape(target, sizeof target, j->target.p, j->target.n))

  if (j->rejected) {
    status = 503;
    /* One line per second at most: under overload the access log has them all. */
    static _Atomic uint64_t last_ms;
    uint64_t now = ts_now_ms(), was = atomic_load_explicit(&last_ms, memory_order_relaxed);
    if (now - was >= 1000 && atomic_compare_exchange_strong(&last_ms, &was, now))
      ts_log_warn("app %s: queue full (app-concurrency %d + app-queue %d): 503", app->name, g_pool.app_concurrency,
                  g_pool.app_queue);
  } else if (j->build_failed) {
    status = 500;
    ts_log_error("app %s: out of memory building the environment", who);
  } else if (j->res == TS_RUN_OK) {
    ts_cgi_response cr;
    if (ts_cgi_parse(j->out.out.p ? j->out.out.p : "", j->out.out.n, &cr, w->out_hdrs, MAX_OUT_HEADERS,
                     g_cfg->max_response_header) == 0) {
      status = cr.status;
      reason = cr.reason;
      hdrs = cr.headers;
      nh = cr.num_headers;
      out_owner = ts_buf_steal(&j->out.out, &out_len);
      out_body = out_owner + cr.body_off;
      out_len -= cr.body_off;
    } else {
      status = 500;
      ESCAPE_REQUEST();
      if (cr.over_head_limit)
        ts_log_error("app %s: %s %s: %s (max-response-header = %llu bytes)", who, method, target, cr.error,
                     (unsigned long long)g_cfg->max_response_header);
      else ts_log_error("app %s: %s %s: %s", who, method, target, cr.error);
    }
  } else {
    ts_run_result res = j->res;
    status = res == TS_RUN_TIMEOUT ? 504 : 500;
    if (res == TS_RUN_TIMEOUT) atomic_fetch_add(&g_metrics.timeouts_total, 1);
    if (res == TS_RUN_TRAP) atomic_fetch_add(&g_metrics.traps_total, 1);
    ESCAPE_REQUEST();
    ts_log_error("app %s: %s %s failed (%s): %s", who, method, target, run_result_name(res), j->out.message);
  }
  if (!out_owner) {
    int n = snprintf(errbody, sizeof errbody, "%d %s\n", status, ts_http_reason(status));
    out_owner = malloc((size_t)n);
    if (out_owner) {
      memcpy(out_owner, errbody, (size_t)n);
      out_body = out_owner;
      out_len = (size_t)n;
    }
    hdrs = j->rejected ? busy_hdrs : &ct_text;
    nh = j->rejected ? 2 : 1;
    reason = (ts_str){0, 0};
  }
  uint64_t took = ts_now_us() - j->t0;
  queue_response(w, c, j->minor, status, reason, hdrs, nh, out_owner, out_body, out_len, ts_str_eq(j->method, "HEAD"));
  ts_metrics_status(j->m.preview ? &g_metrics.other : &app->status, status);
  ts_metrics_latency(took);
  ts_request req = {0};
  req.method = j->method;
  req.target = j->target;
  req.minor = j->minor;
  access_log(w, c, &req, status, out_len, took, who);
#undef ESCAPE_REQUEST
}

/* Answer a request: admin and routing errors right here, guests on the pool.
 * Returns 1 when a job now owns the request (the connection waits for it). */
static int handle_request(worker *w, conn *c, const ts_request *req, const char *body, size_t body_len, size_t end) {
  uint64_t t0 = ts_now_us();
  ts_match m;
  int r;
  size_t pl = strlen(TS_PREVIEW_PREFIX);
  if (req->path.n > pl && memcmp(req->path.p, TS_PREVIEW_PREFIX, pl) == 0) {
    /* A release under test: run like the live app, counted apart from it. */
    r = box_local(c, req) ? ts_registry_route_preview(req->path.p, req->path.n, &m) : -1;
    if (r != 0) {
      send_error(w, c, req, r == -2 ? 503 : 404, 0);
      return 0;
    }
  } else if (req->path.n >= 10 && memcmp(req->path.p, "/_tiramisu", 10) == 0 &&
             (req->path.n == 10 || req->path.p[10] == '/')) {
    handle_admin(w, c, req, t0);
    return 0;
  } else {
    r = ts_registry_route(req->path.p, req->path.n, &m);
    if (r == -1) {
      send_error(w, c, req, 404, 0);
      return 0;
    }
    if (r == -2) {
      ts_metrics_status(&m.app->status, 503);
      send_error(w, c, req, 503, 0);
      return 0;
    }
  }
  ts_app *app = m.app;
  if (m.has_map && m.map.route.max_body > 0 && body_len > (size_t)m.map.route.max_body) {
    ts_metrics_status(&app->status, 413); /* the app's own body limit (the server's was checked while reading) */
    send_error(w, c, req, 413, 0);
    ts_match_release(&m);
    return 0;
  }
  if (!m.preview) atomic_fetch_add_explicit(&app->requests, 1, memory_order_relaxed);
  job *j = job_get(w);
  if (!j) {
    ts_log_error("app %s: out of memory for a request", app->name);
    ts_metrics_status(&app->status, 500);
    send_error(w, c, req, 500, 0);
    ts_match_release(&m);
    return 0;
  }
  j->w = w;
  j->c = c;
  j->m = m;
  j->body = body;
  j->body_len = body_len;
  j->end = end;
  j->method = req->method;
  j->target = req->target;
  j->minor = req->minor;
  j->t0 = t0;
  j->build_failed = 0;
  j->rejected = 0;
  j->item.app = &app->pool;

  ts_wagi_request wr = {0};
  wr.method = req->method;
  wr.path = req->path;
  if (m.preview) /* what follows /_tiramisu/preview/<app>: the path the live app would see */
    wr.path = req->path.n > m.preview_strip ? (ts_str){req->path.p + m.preview_strip, req->path.n - m.preview_strip}
                                            : (ts_str){"/", 1};
  wr.query = req->query;
  wr.script_name = (ts_str){j->m.script_name, strlen(j->m.script_name)};
  wr.matched_route = (ts_str){j->m.matched_route, strlen(j->m.matched_route)};
  wr.headers = req->headers;
  wr.num_headers = req->num_headers;
  /* Views from this request's own parse, never from an earlier one: the
   * buffer may have moved since the head arrived. */
  const ts_header *host = ts_http_find_header(req, "host");
  wr.host = host ? host->value : (ts_str){"", 0};
  if (req->authority.n) wr.host = req->authority; /* absolute-form wins (RFC 9112 3.2.2) */
  wr.server_name = g_cfg->server_name;
  wr.server_port = g_cfg->listen_port;
  wr.remote_addr = c->peer;
  wr.remote_port = c->peer_port;
  char client_addr[TS_WAGI_ADDR_MAX];
  if (c->peer_loopback) ts_wagi_apply_forwarded(&wr, req, client_addr);
  wr.minor = req->minor;
  wr.has_body = c->fr.has_body;
  wr.content_length = body_len;
  wr.server_software = "custom_server/" TS_VERSION;
  char argv_buf[4096];
  const char *argv_words[128];
  if (j->m.has_map) {
    const ts_maproute *mr = &j->m.map.route;
    wr.info_off_set = 1;
    wr.info_off = j->m.info_off;
    wr.extra_names = mr->env_names;
    wr.extra_values = mr->env_values;
    wr.nextra = mr->nenv;
    if (mr->argv[0]) {
      int nw = ts_wargv_expand(mr->argv, j->m.script_name, wr.path.p, wr.path.n, req->query.p, req->query.n, argv_buf,
                               sizeof argv_buf, argv_words, 128);
      if (nw > 0) {
        wr.argv_override = argv_words;
        wr.argc_override = (size_t)nw;
      }
    }
  }
  /* The environment is built here (it copies every string it uses): the
   * header views live in this worker's parse array, reused by the next parse. */
  if (ts_wagi_build(&wr, &j->env)) {
    j->build_failed = 1;
    finish_request(w, c, j);
    ts_match_release(&j->m);
    job_put(w, j);
    return 0;
  }
  c->job = j;
  pool_submit(w, j);
  return 1;
}

/* Parse and answer every complete request in the buffer, in order. */
static void conn_process(worker *w, conn *c) {
  ts_request req;
  c->out_blocked = 0;
  for (;;) {
    if (c->close_after_write || c->job) break;
    if (!out_room(c)) {
      c->out_blocked = 1;
      break;
    }
    if (!c->in_body) {
      if (c->rlen == c->req_off) break;
      /* A head arriving in pieces is scanned once, not from its start on
       * every read (picohttpparser's last_len). */
      size_t avail = c->rlen - c->req_off;
      int r = ts_http_parse_request_resume(c->rbuf + c->req_off, avail, c->head_scanned, &g_limits, &req, w->hdrs,
                                           g_cfg->max_headers);
      if (r == TS_HTTP_INCOMPLETE) {
        c->head_scanned = avail;
        break;
      }
      c->head_scanned = 0;
      if (r == TS_HTTP_ERROR) {
        send_error(w, c, NULL, req.status, 1);
        break;
      }
      if (ts_http_framing(&req, g_cfg->max_body, &c->fr)) {
        send_error(w, c, &req, c->fr.status, 1);
        break;
      }
      c->head_len = (size_t)r;
      c->in_body = 1;
      c->sent_continue = 0;
      if (c->fr.chunked) ts_chunked_init(&c->ch, c->req_off + c->head_len);
    }
    size_t body_start = c->req_off + c->head_len, body_len, end;
    if (c->fr.chunked) {
      int r = ts_chunked_decode(&c->ch, c->rbuf, c->rlen, g_cfg->max_body);
      if (r < 0) {
        ts_http_parse_request(c->rbuf + c->req_off, c->head_len, &g_limits, &req, w->hdrs, g_cfg->max_headers);
        send_error(w, c, &req, r == -2 ? 413 : 400, 1);
        break;
      }
      if (r == 0) {
        /* close the gap between decoded and raw bytes so the buffer stays small */
        if (c->ch.src - c->ch.dst > 4096) {
          memmove(c->rbuf + c->ch.dst, c->rbuf + c->ch.src, c->rlen - c->ch.src);
          c->rlen = c->ch.dst + (c->rlen - c->ch.src);
          c->ch.src = c->ch.dst;
        }
        goto need_body;
      }
      body_len = c->ch.dst - body_start;
      end = c->ch.src;
    } else {
      if (c->rlen - body_start < c->fr.content_length) goto need_body;
      body_len = (size_t)c->fr.content_length;
      end = body_start + body_len;
    }
    /* The buffer may have moved since the head was parsed: take fresh views. */
    ts_http_parse_request(c->rbuf + c->req_off, c->head_len, &g_limits, &req, w->hdrs, g_cfg->max_headers);
    if (!c->fr.keep_alive || w->draining) c->close_after_write = 1;
    /* In flight: stay "in body" (the buffer is not compacted under the job)
     * until the job is back; job_done moves on to the next request. */
    if (handle_request(w, c, &req, c->rbuf + body_start, body_len, end)) break;
    c->req_off = end;
    c->in_body = 0;
    continue;
  need_body:
    if (c->fr.expect_continue && !c->sent_continue && c->niov == 0) {
      ts_conn_push(c, CONTINUE_100, sizeof CONTINUE_100 - 1, NULL);
      c->sent_continue = 1;
    }
    break;
  }
  ts_conn_compact(c);
}

/* Answer what the buffer holds, then write; once the peer finished sending,
 * close after the last answer. Returns -1 when the connection was closed. */
static int conn_advance(worker *w, conn *c) {
  for (;;) {
    conn_process(w, c);
    if (c->eof && !c->job && !c->out_blocked) {
      c->close_after_write = 1;
      if (!c->niov) {
        conn_close(w, c);
        return -1;
      }
    }
    if (conn_flush(w, c) < 0) return -1;
    /* Parsing stopped while output was full and the write made room:
     * answer the rest of the pipelined input now, not when the client
     * sends more. */
    if (!c->out_blocked || !out_room(c)) return 0;
  }
}

/* A guest thread finished c's request: respond, then go on with pipelined
 * input. Called after the epoll batch, so no event of the batch still
 * refers to a connection freed here. */
static void job_done(worker *w, job *j) {
  conn *c = j->c;
  c->job = NULL;
  c->in_paused = 0;
  if (c->closed) { /* the client went away meanwhile */
    ts_match_release(&j->m);
    job_put(w, j);
    conn_close(w, c);
    return;
  }
  finish_request(w, c, j);
  ts_match_release(&j->m);
  c->req_off = j->end;
  c->in_body = 0;
  c->last_ms = ts_now_ms();
  job_put(w, j);
  conn_advance(w, c);
}

/* Answer the finished jobs; with `sleep`, when there are none, mark the
 * worker idle (about to wait) in the same critical section. Returns whether
 * there were any. */
static int take_done(worker *w, int sleep) {
  pthread_mutex_lock(&w->done_mu);
  job *j = w->done_head;
  w->done_head = w->done_tail = NULL;
  if (sleep && !j) w->idle = 1;
  pthread_mutex_unlock(&w->done_mu);
  int any = j != NULL;
  while (j) {
    job *next = j->next;
    job_done(w, j);
    j = next;
  }
  return any;
}

static void conn_readable(worker *w, conn *c) {
  if (c->lingering) {
    char sink[4096];
    ssize_t n = read(c->watch.fd, sink, sizeof sink);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) conn_close(w, c);
    return;
  }
  long n = ts_conn_read(c, g_rbuf_limit);
  if (n == -1) {
    conn_close(w, c);
    return;
  }
  if (n == -2) { /* nothing now, or full until the queued output drains */
    update_events(w, c);
    return;
  }
  if (n == 0) c->eof = 1; /* client finished sending: answer what is complete, then close */
  conn_advance(w, c);
}

static worker *worker_of(ts_loop *l) { return (worker *)(void *)((char *)l - offsetof(worker, loop)); }

/* One connection's events. */
static void conn_event(ts_loop *l, void *data, uint32_t e) {
  worker *w = worker_of(l);
  conn *c = data;
  if (c->closed) return; /* closed earlier in this batch */
  if (c->job) {          /* no reading while its guest runs; an error closes it */
    if (e & (EPOLLHUP | EPOLLERR)) conn_close(w, c);
    else {
      if (e & EPOLLIN) c->in_paused = 1;
      conn_flush(w, c); /* writes what is queued, updates the events */
    }
    return;
  }
  if (e & (EPOLLERR | EPOLLHUP)) {
    /* reset or both directions shut: nothing more can be read or
     * written; level-triggered, so leaving it open would spin */
    conn_close(w, c);
    return;
  }
  if (e & EPOLLOUT) {
    if (conn_flush(w, c) < 0) return;
    if (c->out_blocked && out_room(c) && conn_advance(w, c) < 0) return;
  }
  if (e & EPOLLIN) conn_readable(w, c);
}

static void listen_event(ts_loop *l, void *data, uint32_t events);
static void unix_event(ts_loop *l, void *data, uint32_t events);

/* Every listener (TCP, and listen-unix if set) in w's loop: 0 or -1. */
static int watch_listeners(ts_loop *l, worker *w) {
  if (ts_loop_watch_add(l, &w->listen_watch, g_listen_fd, EPOLLIN | EPOLLEXCLUSIVE, listen_event, w)) return -1;
  if (g_unix_fd >= 0 && ts_loop_watch_add(l, &w->unix_watch, g_unix_fd, EPOLLIN | EPOLLEXCLUSIVE, unix_event, w)) {
    ts_loop_watch_del(l, &w->listen_watch);
    return -1;
  }
  return 0;
}

static void unwatch_listeners(ts_loop *l, worker *w) {
  ts_loop_watch_del(l, &w->listen_watch);
  if (g_unix_fd >= 0) ts_loop_watch_del(l, &w->unix_watch);
}

/* Stop listening for a moment. The listener is level-triggered: at the fd
 * limit a pending connection would wake the loop again at once, and accept
 * would fail again, spinning a core. The kernel keeps new
 * connections in the backlog meanwhile. */
static void pause_accept(worker *w, const char *why) {
  static _Atomic uint64_t last_log;
  uint64_t now = ts_now_ms();
  if (now - atomic_load(&last_log) > 5000) {
    atomic_store(&last_log, now);
    ts_log_warn("accept paused %d ms: %s (open connections %d, max-connections %d)", ACCEPT_PAUSE_MS, why,
                atomic_load(&g_open_conns), g_max_conns);
  }
  if (!w->accept_paused) unwatch_listeners(&w->loop, w);
  w->accept_paused = 1;
  ts_loop_timer_arm(&w->loop, w->t_accept, ACCEPT_PAUSE_MS, 0);
}

/* Timer "accept-resume". */
static void resume_accept(ts_loop *l, void *data) {
  worker *w = data;
  if (!w->accept_paused || w->draining) return;
  if (watch_listeners(l, w) == 0) w->accept_paused = 0;
  else ts_loop_timer_arm(l, w->t_accept, ACCEPT_PAUSE_MS, 0);
}

static void accept_some(worker *w, int lfd) {
  for (int i = 0; i < 32; i++) {
    if (atomic_load_explicit(&g_open_conns, memory_order_relaxed) >= g_max_conns) {
      pause_accept(w, "max-connections reached");
      return;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) pause_accept(w, strerror(errno));
      return;
    }
    conn *c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      pause_accept(w, "out of memory");
      return;
    }
    int one = 1;
    if (ss.ss_family != AF_UNIX) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->last_ms = ts_now_ms();
    if (ss.ss_family == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&ss;
      inet_ntop(AF_INET, &a->sin_addr, c->peer, sizeof c->peer);
      c->peer_port = ntohs(a->sin_port);
      c->peer_loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    } else if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      inet_ntop(AF_INET6, &a->sin6_addr, c->peer, sizeof c->peer);
      c->peer_port = ntohs(a->sin6_port);
      c->peer_loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) ||
                         (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127);
      if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], c->peer, sizeof c->peer);
    } else if (ss.ss_family == AF_UNIX) {
      /* listen-unix: a 0600 socket in the env dir, so the peer is the box
       * user's own proxy: local, like a loopback peer. */
      strcpy(c->peer, "unix");
      c->peer_loopback = 1;
    } else {
      strcpy(c->peer, "-");
    }
    if (ts_loop_watch_add(&w->loop, &c->watch, fd, EPOLLIN, conn_event, c) != 0) {
      close(fd);
      free(c);
      continue;
    }
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    atomic_fetch_add_explicit(&g_open_conns, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_metrics.connections_active, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_metrics.connections_total, 1, memory_order_relaxed);
  }
}

static void listen_event(ts_loop *l, void *data, uint32_t events) {
  (void)l;
  (void)events;
  worker *w = data;
  if (!w->draining) accept_some(w, g_listen_fd);
}

static void unix_event(ts_loop *l, void *data, uint32_t events) {
  (void)l;
  (void)events;
  worker *w = data;
  if (!w->draining) accept_some(w, g_unix_fd);
}

/* Idle connections, slow clients, lingering closes. */
static void sweep_conns(worker *w, uint64_t now) {
  conn *next;
  for (conn *c = w->conns; c; c = next) {
    next = c->next;
    if (c->lingering) {
      if (now - c->last_ms > LINGER_MS) conn_close(w, c);
      continue;
    }
    if (c->job) continue; /* a guest runs for it: its own deadline applies */
    int idle = !c->in_body && c->rlen == c->req_off && !c->niov;
    if (w->draining && idle) {
      conn_close(w, c);
      continue;
    }
    if (now - c->last_ms <= g_cfg->idle_timeout_ms) continue;
    if (c->niov || idle) { /* client stopped reading, or plain keep-alive idle */
      conn_close(w, c);
      continue;
    }
    /* a request started but never finished */
    send_error(w, c, NULL, 408, 1);
    conn_flush(w, c);
  }
}

/* Timer "sweep": idle connections every second; while draining, every 50 ms,
 * with the end of the drain. */
static void sweep(ts_loop *l, void *data) {
  worker *w = data;
  uint64_t now = ts_now_ms();
  sweep_conns(w, now);
  if (w->draining) {
    if (!w->nconns) {
      w->exit = 1;
      return;
    }
    if (now > w->drain_deadline && !w->drain_forced) {
      /* Connections whose guest still runs stay (closed) until the guest
       * returns, within timeout-ms: a job never outlives its worker. */
      ts_log_warn("worker %d: drain timeout, closing %d connection(s)", w->id, w->nconns);
      conn *next;
      for (conn *c = w->conns; c; c = next) {
        next = c->next;
        if (!c->closed) conn_close(w, c);
      }
      w->drain_forced = 1;
      if (!w->nconns) {
        w->exit = 1;
        return;
      }
    }
  }
  ts_loop_timer_arm(l, w->t_sweep, w->draining ? DRAIN_SWEEP_MS : SWEEP_MS, 0);
}

/* Timer "access-flush": the access log leaves in batches, at most
 * ACCESS_FLUSH_MS after a request. */
static void flush_access(ts_loop *l, void *data) {
  (void)l;
  worker *w = data;
  if (w->access.n) ts_log_access_write(w->access.p, w->access.n);
  w->access.n = 0;
}

/* The drain eventfd (SIGTERM). */
static void drain_event(ts_loop *l, void *data, uint32_t events) {
  (void)events;
  worker *w = data;
  uint64_t v;
  if (read(w->evfd, &v, sizeof v) <= 0 || w->draining) return;
  w->draining = 1;
  w->drain_deadline = ts_now_ms() + g_cfg->drain_timeout_ms;
  if (!w->accept_paused) unwatch_listeners(l, w);
  ts_loop_timer_disarm(l, w->t_accept);
  for (conn *c = w->conns; c; c = c->next)
    if (c->in_body || c->rlen != c->req_off || c->niov) c->close_after_write = 1;
  /* idle connections close in the next sweep, right after this batch */
  ts_loop_timer_arm(l, w->t_sweep, 0, 0);
}

/* Guest threads posted finished jobs. Connections closed while answering
 * them are only freed before the next wait, so later events of this batch
 * stay safe. */
static void done_event(ts_loop *l, void *data, uint32_t events) {
  (void)l;
  (void)events;
  worker *w = data;
  uint64_t v;
  ssize_t r = read(w->donefd, &v, sizeof v);
  (void)r;
  take_done(w, 0);
}

/* Before each wait: free what was closed, answer finished jobs (if any,
 * don't sleep), hand this iteration's new jobs to the guest threads. */
static int before_sleep(ts_loop *l, void *data) {
  (void)l;
  worker *w = data;
  free_dead(w);
  int busy = take_done(w, 0);
  pool_flush(w);
  /* Idle only after the inline runs: a helper thread that ran the loop
   * meanwhile may have left jobs that finished without a wake-up. */
  if (take_done(w, !busy)) { /* marks the worker idle only when it will wait */
    pool_flush(w);
    busy = 1;
  }
  return busy;
}

static void after_sleep(ts_loop *l, void *data) {
  (void)l;
  worker *w = data;
  pthread_mutex_lock(&w->done_mu);
  w->idle = 0;
  pthread_mutex_unlock(&w->done_mu);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  while (!w->exit) ts_loop_run_once(&w->loop, SWEEP_MS);
  if (w->access.n) ts_log_access_write(w->access.p, w->access.n);
  w->access.n = 0;
  free_dead(w);
  while (w->free_jobs) {
    job *j = w->free_jobs;
    w->free_jobs = j->next;
    ts_wagi_env_free(&j->env);
    ts_buf_free(&j->out.out);
    free(j);
  }
  return NULL;
}

int ts_server_start(const ts_config *cfg, ts_engine *engine) {
  g_cfg = cfg;
  g_engine = engine;
  g_limits.max_request_line = cfg->max_request_line;
  g_limits.max_header_bytes = cfg->max_header;
  g_limits.max_headers = cfg->max_headers;
  g_rbuf_limit = cfg->max_header + cfg->max_body + 65536;
  g_max_conns = cfg->max_connections ? cfg->max_connections : ts_listen_auto_max_connections();
  g_nworkers = cfg->workers;
  g_workers = calloc((size_t)g_nworkers, sizeof *g_workers);
  if (!g_workers) return -1;
  char perr[256];
  if (ts_pool_start(&g_pool, cfg->guest_threads, cfg->app_concurrency, (int)cfg->app_queue, SPIN_US, guest_run, NULL,
                    perr, sizeof perr)) {
    ts_log_error("%s", perr);
    return -1;
  }
  for (int i = 0; i < g_nworkers; i++) {
    worker *w = &g_workers[i];
    w->id = i;
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->donefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&w->done_mu, NULL);
    pthread_mutex_init(&w->own_mu, NULL);
    w->hdrs = calloc(cfg->max_headers, sizeof *w->hdrs);
    if (ts_loop_init(&w->loop) || w->evfd < 0 || w->donefd < 0 || !w->hdrs) return -1;
    ts_loop *l = &w->loop;
    ts_loop_on_sleep(l, before_sleep, after_sleep, w);
    w->t_sweep = ts_loop_timer_new(l, "sweep", sweep, w);
    w->t_access = ts_loop_timer_new(l, "access-flush", flush_access, w);
    w->t_accept = ts_loop_timer_new(l, "accept-resume", resume_accept, w);
    ts_loop_timer_arm(l, w->t_sweep, SWEEP_MS, 0);
    if (watch_listeners(l, w) || ts_loop_watch_add(l, &w->drain_watch, w->evfd, EPOLLIN, drain_event, w) ||
        ts_loop_watch_add(l, &w->done_watch, w->donefd, EPOLLIN, done_event, w))
      return -1;
    if (pthread_create(&w->thread, NULL, worker_main, w)) return -1;
  }
  atomic_store(&g_watch_ready, 1);
  return 0;
}

void ts_server_drain(void) {
  for (int i = 0; i < g_nworkers; i++) {
    uint64_t one = 1;
    ssize_t r = write(g_workers[i].evfd, &one, sizeof one);
    (void)r;
  }
  for (int i = 0; i < g_nworkers; i++) pthread_join(g_workers[i].thread, NULL);
  /* Every job has come back (a worker exits only without connections). */
  ts_pool_stop(&g_pool);
  if (g_listen_fd >= 0) close(g_listen_fd);
  g_listen_fd = -1;
  if (g_unix_fd >= 0) {
    close(g_unix_fd);
    ts_listen_unlink_unix(g_cfg->listen_unix, g_unix_ino);
  }
  g_unix_fd = -1;
}
