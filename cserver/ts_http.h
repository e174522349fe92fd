/* HTTP/1.1 request parsing and response heads.
 *
 * The request parser keeps no state and copies nothing: it is called on the
 * whole buffer received so far and returns views into it. The caller may
 * remember how far the previous call got (ts_http_parse_request_resume), so a
 * slowly arriving head is not re-scanned from its start on every read.
 */
#ifndef TS_HTTP_H
#define TS_HTTP_H

#include <stdint.h>
#include "ts_util.h"

#define TS_HTTP_ERROR (-1)      /* req->status says which 4xx/5xx to answer */
#define TS_HTTP_INCOMPLETE (-2) /* need more bytes */

typedef struct {
  ts_str name;
  ts_str value;
} ts_header;

typedef struct {
  size_t max_request_line; /* bytes, else 414 */
  size_t max_header_bytes; /* request line + headers, else 431 */
  size_t max_headers;      /* header lines, else 431 */
} ts_http_limits;

typedef struct {
  ts_str method;
  ts_str target;    /* as sent */
  ts_str path;      /* origin-form path (absolute-form: the path part) */
  ts_str query;     /* after '?', without it; empty when none */
  ts_str authority; /* absolute-form's host[:port] (RFC 9112 3.2.2: it wins over Host); else empty */
  int minor;        /* HTTP/1.<minor>, 0 or 1 */
  ts_header *headers;
  size_t num_headers;
  int status; /* set when the parser returns TS_HTTP_ERROR */
} ts_request;

/* Parse a request head in buf[0..len). Returns the head's length (> 0) when
 * complete, TS_HTTP_INCOMPLETE, or TS_HTTP_ERROR with req->status set (400,
 * 414, 431 or 505). Leading empty lines are skipped (RFC 9112 2.2) and counted
 * in the returned length. `headers` has room for `header_cap` entries. */
int ts_http_parse_request(const char *buf, size_t len, const ts_http_limits *lim, ts_request *req, ts_header *headers,
                          size_t header_cap);

/* The same for a head that arrives in pieces, as picohttpparser's last_len:
 * `last_len` is the length passed to the previous call on this request that
 * returned TS_HTTP_INCOMPLETE (0 on the first call); the bytes before it must
 * be unchanged, though the buffer may have moved. Until the blank line
 * arrives only the new bytes are looked at, so a head sent a byte at a time
 * costs linear work, not quadratic. Syntax errors after the first call show
 * once the head is complete or over a limit; the final answer is the one
 * ts_http_parse_request gives on the same bytes. */
int ts_http_parse_request_resume(const char *buf, size_t len, size_t last_len, const ts_http_limits *lim,
                                 ts_request *req, ts_header *headers, size_t header_cap);

/* The length of the head in buf[0..len) up to and including its first empty
 * line (leading empty lines do not count), or 0 when that line has not
 * arrived. The search starts at `prev_scanned`, a length for which a previous
 * call returned 0 (pass 0 the first time). Pure; no validation. */
size_t ts_http_head_end(const char *buf, size_t len, size_t prev_scanned);

#ifdef TS_HTTP_COUNT_EXAMINED
/* Test builds: bytes the parser looked at (an upper bound), to check that
 * resuming is linear. */
extern size_t ts_http_examined;
#endif

/* How the body is framed and what the connection should do afterwards.
 * Plain values only, no views into the request buffer: a connection keeps
 * this across reads, and a read may move the buffer. */
typedef struct {
  int chunked;
  int has_body;            /* Content-Length or chunked framing was sent */
  uint64_t content_length; /* when !chunked */
  int keep_alive;
  int expect_continue;
  int status; /* error status when ts_http_framing returns -1 */
} ts_framing;

/* 0, or -1 with f->status = 400 (bad/duplicate lengths, missing Host in 1.1),
 * 413 (Content-Length over max_body) or 501 (unsupported transfer coding). */
int ts_http_framing(const ts_request *req, uint64_t max_body, ts_framing *f);

const ts_header *ts_http_find_header(const ts_request *req, const char *name);

/* Whether v is a valid Host value or absolute-form authority without
 * userinfo: empty, or uri-host [ ":" port ] (RFC 9110 7.2, RFC 3986 3.2.2):
 * an IP-literal in brackets or a reg-name of unreserved, pct-encoded and
 * sub-delims characters, then an optional port of digits. */
int ts_http_host_valid(ts_str v);

/* Incremental, in-place chunked-body decoder. Raw bytes live in
 * buf[src .. len); decoded payload is compacted to buf[dst ...]; dst <= src. */
typedef struct {
  size_t src, dst; /* offsets into the caller's buffer; start both at the body */
  uint64_t remaining;
  uint64_t total;
  size_t side_bytes; /* extension + trailer bytes, limited */
  int state;
  int digits;
} ts_chunked;

void ts_chunked_init(ts_chunked *d, size_t body_off);
/* 1 = complete (d->src is just past the body), 0 = need more input,
 * -1 = malformed (400), -2 = payload larger than max_body (413). */
int ts_chunked_decode(ts_chunked *d, char *buf, size_t len, uint64_t max_body);

const char *ts_http_reason(int status);

/* Decode %XX escapes of src into dst (room for src.n bytes); returns length.
 * Invalid escapes are copied as is. '+' is left alone (paths, not forms). */
size_t ts_http_percent_decode(ts_str src, char *dst);

#endif
