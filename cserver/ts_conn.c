#include "ts_conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ts_util.h"

int ts_conn_out_room(const ts_conn *c, size_t budget) { return c->niov < TS_CONN_MAX_IOV - 4 && c->out_bytes < budget; }

uint32_t ts_conn_wanted_events(const ts_conn *c, size_t budget, size_t rbuf_limit) {
  if (c->lingering) return EPOLLIN;
  uint32_t want = 0;
  /* While a job runs, EPOLLIN stays on (no epoll_ctl per request) until
   * input actually arrives; the connection reads nothing meanwhile. */
  if (!c->close_after_write && !c->in_paused && !c->eof && ts_conn_out_room(c, budget) && c->rlen < rbuf_limit)
    want |= EPOLLIN;
  if (c->niov) want |= EPOLLOUT;
  return want;
}

int ts_conn_push(ts_conn *c, const void *base, size_t len, char *own) {
  if (c->niov >= TS_CONN_MAX_IOV) {
    free(own);
    return -1;
  }
  c->iov[c->niov].iov_base = (void *)base;
  c->iov[c->niov].iov_len = len;
  c->own[c->niov] = own;
  c->niov++;
  c->out_bytes += len;
  return 0;
}

static int status_has_body(int status) { return !(status < 200 || status == 204 || status == 304); }

int ts_conn_queue_response(ts_conn *c, const char *date, int minor, int status, ts_str reason, const ts_header *hdrs,
                           size_t nh, char *body_owner, const char *body, size_t body_len, int head_only) {
  ts_buf h = {0};
  int rc = 0;
  if (!reason.n) reason = (ts_str){ts_http_reason(status), strlen(ts_http_reason(status))};
  rc |= ts_buf_reserve(&h, 160);
  rc |= ts_buf_printf(&h, "HTTP/1.1 %d %.*s\r\nDate: %s\r\n", status, (int)reason.n, reason.p, date);
  for (size_t i = 0; i < nh; i++) {
    rc |= ts_buf_append(&h, hdrs[i].name.p, hdrs[i].name.n);
    rc |= ts_buf_append(&h, ": ", 2);
    rc |= ts_buf_append(&h, hdrs[i].value.p, hdrs[i].value.n);
    rc |= ts_buf_append(&h, "\r\n", 2);
  }
  int with_body = status_has_body(status);
  if (with_body) rc |= ts_buf_printf(&h, "Content-Length: %zu\r\n", body_len);
  if (c->close_after_write) rc |= ts_buf_puts(&h, "Connection: close\r\n");
  else if (minor == 0) rc |= ts_buf_puts(&h, "Connection: keep-alive\r\n");
  rc |= ts_buf_append(&h, "\r\n", 2);
  if (rc) { /* out of memory: drop the connection rather than send half a head */
    ts_buf_free(&h);
    free(body_owner);
    c->close_after_write = 1;
    return -1;
  }
  size_t hl;
  char *hp = ts_buf_steal(&h, &hl);
  if (ts_conn_push(c, hp, hl, hp)) {
    free(body_owner);
    return -1;
  }
  if (with_body && !head_only && body_len) return ts_conn_push(c, body, body_len, body_owner);
  free(body_owner);
  return 0;
}

int ts_conn_write(ts_conn *c) {
  while (c->niov) {
    ssize_t n = writev(c->watch.fd, c->iov, c->niov);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      return -1;
    }
    size_t left = (size_t)n;
    int done = 0;
    c->out_bytes -= (size_t)n;
    if (n) c->last_ms = ts_now_ms(); /* a slow reader that reads is not idle */
    while (done < c->niov && left >= c->iov[done].iov_len) {
      left -= c->iov[done].iov_len;
      free(c->own[done]);
      done++;
    }
    if (done < c->niov && left) {
      c->iov[done].iov_base = (char *)c->iov[done].iov_base + left;
      c->iov[done].iov_len -= left;
    }
    if (done) {
      memmove(c->iov, c->iov + done, sizeof(struct iovec) * (size_t)(c->niov - done));
      memmove(c->own, c->own + done, sizeof(char *) * (size_t)(c->niov - done));
      c->niov -= done;
    }
  }
  return 0;
}

void ts_conn_drop_output(ts_conn *c) {
  for (int i = 0; i < c->niov; i++) free(c->own[i]);
  c->niov = 0;
  c->out_bytes = 0;
}

long ts_conn_read(ts_conn *c, size_t limit) {
  if (c->rcap - c->rlen < 1024 && c->rcap < limit) {
    size_t cap = c->rcap ? c->rcap * 2 : TS_CONN_READ_CHUNK;
    if (cap > limit) cap = limit;
    char *p = realloc(c->rbuf, cap);
    if (!p) return -1;
    c->rbuf = p; /* capacity raised only once the allocation succeeded */
    c->rcap = cap;
  }
  if (c->rlen == c->rcap) return -2; /* full: wait until the queued output drains */
  ssize_t n = read(c->watch.fd, c->rbuf + c->rlen, c->rcap - c->rlen);
  if (n < 0) return errno == EAGAIN || errno == EINTR ? -2 : -1;
  if (n > 0) {
    c->rlen += (size_t)n;
    c->last_ms = ts_now_ms();
  }
  return (long)n;
}

/* Offsets kept across reads (the chunked decoder's) move along; no pointer
 * into the buffer is kept across a read, so nothing else needs fixing. */
void ts_conn_compact(ts_conn *c) {
  if (c->job) return;
  size_t off = c->req_off;
  if (off) {
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    c->req_off = 0;
    if (c->in_body && c->fr.chunked) {
      c->ch.src -= off;
      c->ch.dst -= off;
    }
  }
  if (!c->rlen && !c->in_body && c->rcap > 4 * TS_CONN_READ_CHUNK) {
    free(c->rbuf);
    c->rbuf = NULL;
    c->rcap = 0;
  }
}
