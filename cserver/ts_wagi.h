/* WAGI (CGI/1.1 for WASI command modules): the pure parts.
 *
 * ts_wagi_build builds the guest's environment and argv from a parsed
 * request; ts_cgi_parse turns the guest's stdout into a status, headers and a
 * body. Neither does I/O, so both are unit-tested and fuzzed directly.
 */
#ifndef TS_WAGI_H
#define TS_WAGI_H

#include "ts_http.h"
#include "ts_util.h"

typedef struct {
  ts_str method;
  ts_str path;          /* raw path from the request target, no query */
  ts_str query;         /* raw, without '?' */
  ts_str script_name;   /* the matched route prefix, "" for "/" */
  ts_str matched_route; /* the route as configured, e.g. "/hello" or "/" */
  const ts_header *headers;
  size_t num_headers;
  ts_str host;             /* Host header, may be empty */
  const char *server_name; /* fallback when there is no Host */
  int server_port;         /* the port the client connected to (RFC 3875 4.1.15) */
  const char *remote_addr; /* the client's address (behind our nginx: its X-Real-IP) */
  int remote_port;
  int minor;    /* HTTP/1.<minor> */
  int has_body; /* the request carried a body (Content-Length or chunked) */
  uint64_t content_length;
  const char *server_software;
  /* App map routes (zero when unused). X_RAW_PATH_INFO starts at
   * path.p + info_off when info_off_set (WAGI's "/..." has SCRIPT_NAME "/"
   * but the whole path as path info); the app's own variables come after the
   * CGI ones; argv replaces WAGI's default argv when argc_override > 0. */
  int info_off_set;
  size_t info_off;
  const char *const *extra_names, *const *extra_values;
  size_t nextra;
  const char *const *argv_override;
  size_t argc_override;
} ts_wagi_request;

/* Environment and argv for one request. Reuse across requests (call reset);
 * names/values/argv point into the arenas and stay valid until the next build. */
typedef struct {
  ts_buf env_arena; /* "NAME\0VALUE\0" ... */
  ts_buf arg_arena; /* "arg\0" ... */
  const char **names, **values, **argv;
  size_t envc, argc, cap_env, cap_arg;
} ts_wagi_env;

int ts_wagi_build(const ts_wagi_request *r, ts_wagi_env *e); /* 0 or -1 (out of memory) */

#define TS_WAGI_ADDR_MAX 46 /* INET6_ADDRSTRLEN */
/* For a request from the box's own nginx (the caller checks the peer is on
 * loopback): REMOTE_ADDR from X-Real-IP and SERVER_PORT from X-Forwarded-Port
 * (RFC 3875 4.1.8, 4.1.15), when they are well-formed; `addr` holds the copied
 * address. Pure. */
void ts_wagi_apply_forwarded(ts_wagi_request *wr, const ts_request *req, char addr[TS_WAGI_ADDR_MAX]);
void ts_wagi_env_free(ts_wagi_env *e);
const char *ts_wagi_getenv(const ts_wagi_env *e, const char *name); /* tests */

/* Response header fields a guest may not send (RFC 3875 6.3.4, RFC 9110
 * 7.6.1): framing and hop-by-hop fields belong to the server, and X-Accel-*
 * would steer the proxy in front of it. Dropped, never an error. */
int ts_cgi_header_dropped(ts_str name);

/* Parsed CGI output. Header views point into the output buffer. */
typedef struct {
  int status;
  ts_str reason; /* from Status:, may be empty */
  ts_header *headers;
  size_t num_headers;  /* response headers to send (Status removed) */
  size_t body_off;     /* body = out[body_off .. len) */
  const char *error;   /* set when ts_cgi_parse returns -1 */
  int over_head_limit; /* the error is the max_head limit */
} ts_cgi_response;

/* 0, or -1 with r->error (malformed output: the server answers 500). Lines end
 * in LF or CRLF; headers end at the first empty line (or the end of output).
 * `Status:` (200-599; a CGI cannot send 1xx) sets the status wherever it
 * appears; `Location:` without it is a 302; none of Content-Type, Location,
 * Status is an error. Repeated headers are all kept in order. Fields for which
 * ts_cgi_header_dropped is true are dropped. The kept header lines may hold at
 * most `max_head` bytes (name + value + 4 each: what they take on the wire),
 * the response-header limit shared with nginx's proxy_buffer_size. */
int ts_cgi_parse(const char *out, size_t len, ts_cgi_response *r, ts_header *headers, size_t cap, size_t max_head);

#endif
