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
  ts_str path;  /* raw path from the request target, no query */
  ts_str query; /* raw, without '?' */
  ts_str script_name;   /* the matched route prefix, "" for "/" */
  ts_str matched_route; /* the route as configured, e.g. "/hello" or "/" */
  const ts_header *headers;
  size_t num_headers;
  ts_str host;             /* Host header, may be empty */
  const char *server_name; /* fallback when there is no Host */
  int server_port;         /* listener port, fallback for SERVER_PORT */
  const char *remote_addr;
  int remote_port;
  int minor; /* HTTP/1.<minor> */
  uint64_t content_length;
  const char *server_software;
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
void ts_wagi_env_free(ts_wagi_env *e);
const char *ts_wagi_getenv(const ts_wagi_env *e, const char *name); /* tests */

/* Parsed CGI output. Header views point into the output buffer. */
typedef struct {
  int status;
  ts_str reason; /* from Status:, may be empty */
  ts_header *headers;
  size_t num_headers; /* response headers to send (Status removed) */
  size_t body_off;    /* body = out[body_off .. len) */
  const char *error;  /* set when ts_cgi_parse returns -1 */
} ts_cgi_response;

/* 0, or -1 with r->error (malformed output: the server answers 500). Lines end
 * in LF or CRLF; headers end at the first empty line (or the end of output).
 * `Status:` sets the status wherever it appears; `Location:` without it is a
 * 302; none of Content-Type, Location, Status is an error. Repeated headers are
 * all kept in order. Content-Length, Transfer-Encoding, Connection from the
 * guest are dropped (the server frames the response itself). */
int ts_cgi_parse(const char *out, size_t len, ts_cgi_response *r, ts_header *headers, size_t cap);

#endif
