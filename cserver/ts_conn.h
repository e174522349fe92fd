/* One client connection's buffers: the read buffer a request is parsed from
 * in place, and the queue of response pieces written with one writev.
 *
 * No event loop, no guests: ts_server.c owns connections and decides what to
 * do; these functions only move bytes and report. The rule that keeps the
 * read buffer safe (a stale Host view once leaked one client's bytes into
 * another client's guest): across a read, a connection keeps
 * offsets into it, never pointers, because a read may move it.
 */
#ifndef TS_CONN_H
#define TS_CONN_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "ts_http.h"
#include "ts_loop.h"

#define TS_CONN_MAX_IOV 64
#define TS_CONN_READ_CHUNK 16384

struct ts_job;

typedef struct ts_conn {
  ts_loop_watch watch; /* watch.fd is the socket (-1 once closed) */
  /* input */
  char *rbuf;
  size_t rlen, rcap;
  size_t req_off; /* start of the request being read */
  int in_body;    /* head parsed, waiting for the body */
  size_t head_len;
  size_t head_scanned; /* bytes of an incomplete head already scanned (relative to req_off) */
  ts_framing fr;       /* plain values, no views */
  ts_chunked ch;       /* offsets into rbuf */
  int sent_continue;
  /* output */
  struct iovec iov[TS_CONN_MAX_IOV];
  char *own[TS_CONN_MAX_IOV]; /* what to free once iov[i] is written (or NULL) */
  int niov;
  size_t out_bytes; /* queued response bytes: back-pressure past max-conn-output */
  int out_blocked;  /* parsing stopped for want of output room: resume when it drains */
  /* state */
  int close_after_write;
  int lingering;
  int eof;            /* the peer finished sending */
  int closed;         /* the socket is closed; freed when no job holds it */
  struct ts_job *job; /* request being run by a guest thread, or NULL */
  int in_paused;      /* input arrived while the job runs: EPOLLIN off until it is back */
  uint64_t last_ms;   /* last progress, for the idle sweep */
  char peer[INET6_ADDRSTRLEN];
  int peer_port;
  int peer_loopback;
  struct ts_conn *prev, *next; /* the owning worker's list */
  struct ts_conn *dead_next;   /* queued for freeing after the event batch */
  int dead;                    /* unlinked and queued: never touched again */
} ts_conn;

/* May the connection take on another response? Pipelined requests stop being
 * parsed past `budget` queued bytes or a nearly full iovec (back-pressure). */
int ts_conn_out_room(const ts_conn *c, size_t budget);

/* The epoll mask the connection needs now (pure). */
uint32_t ts_conn_wanted_events(const ts_conn *c, size_t budget, size_t rbuf_limit);

/* Queue len bytes at base; `own` (may be NULL) is freed once written. -1 when
 * the queue is full (own is freed then). */
int ts_conn_push(ts_conn *c, const void *base, size_t len, char *own);

/* Queue one response: the head (status line, Date, headers, framing) in one
 * buffer, the body (owned by body_owner, freed once written) in a second
 * piece; both leave in the same writev. -1 when out of memory (the caller
 * closes). `date` is the IMF-fixdate of now. */
int ts_conn_queue_response(ts_conn *c, const char *date, int minor, int status, ts_str reason, const ts_header *hdrs,
                           size_t nh, char *body_owner, const char *body, size_t body_len, int head_only);

/* Write what is queued, without blocking: 0 (all or part written), -1 on a
 * write error (the caller closes). */
int ts_conn_write(ts_conn *c);

/* Free what is queued and not written. */
void ts_conn_drop_output(ts_conn *c);

/* Read into the buffer (grown up to `limit` bytes): > 0 bytes read, 0 the
 * peer finished sending, -1 error (close), -2 nothing now (EAGAIN, or the
 * buffer is full until the queued answers drain). */
long ts_conn_read(ts_conn *c, size_t limit);

/* Move the unanswered input to the front of the buffer when no job holds
 * views into it (pipelined requests behind a large body), and give back a large buffer left empty. */
void ts_conn_compact(ts_conn *c);

#endif
