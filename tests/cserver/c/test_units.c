/* Unit tests of the pure C parts: HTTP parser, chunked decoder, WAGI env and
 * CGI output parsing, routes. Built with -fsanitize=address,undefined; every
 * parser input is placed right before a PROT_NONE guard page so a read past
 * the end faults at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ts_http.h"
#include "ts_registry.h"
#include "ts_wagi.h"

static int failures, checks;
#define CHECK(cond)                                                                                                    \
  do {                                                                                                                 \
    checks++;                                                                                                          \
    if (!(cond)) {                                                                                                     \
      failures++;                                                                                                      \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                                         \
    }                                                                                                                  \
  } while (0)

static char *guard_base;
static size_t page;

/* Copy s so that its last byte is the last byte before the guard page. */
static char *guarded(const char *s, size_t n) {
  char *end = guard_base + page * 4;
  memcpy(end - n, s, n);
  return end - n;
}

static const ts_http_limits LIM = {1024, 4096, 32};

static int parse(const char *s, ts_request *req, ts_header *h) {
  size_t n = strlen(s);
  return ts_http_parse_request(guarded(s, n), n, &LIM, req, h, 32);
}

static void test_parser_basic(void) {
  ts_request req;
  ts_header h[32];
  const char *s = "GET /app/x?y=1&z HTTP/1.1\r\nHost: a.b\r\nX-Empty:\r\nX-Sp:  v  \r\n\r\nBODY";
  int r = parse(s, &req, h);
  CHECK(r == (int)(strlen(s) - 4));
  CHECK(ts_str_eq(req.method, "GET"));
  CHECK(ts_str_eq(req.path, "/app/x"));
  CHECK(ts_str_eq(req.query, "y=1&z"));
  CHECK(req.minor == 1);
  CHECK(req.num_headers == 3);
  CHECK(ts_str_eq(req.headers[0].name, "Host") && ts_str_eq(req.headers[0].value, "a.b"));
  CHECK(req.headers[1].value.n == 0);
  CHECK(ts_str_eq(req.headers[2].value, "v"));
  /* every strict prefix is incomplete, never an error or a read past the end */
  size_t n = strlen(s) - 4;
  for (size_t k = 0; k < n; k++) {
    int rr = ts_http_parse_request(guarded(s, k), k, &LIM, &req, h, 32);
    CHECK(rr == TS_HTTP_INCOMPLETE);
  }
  /* LF-only line ends and leading empty lines */
  CHECK(parse("\r\n\nGET / HTTP/1.0\nHost: x\n\n", &req, h) > 0 && req.minor == 0);
  CHECK(parse("GET http://h.example/p?q HTTP/1.1\r\nHost: h\r\n\r\n", &req, h) > 0 && ts_str_eq(req.path, "/p") &&
        ts_str_eq(req.query, "q"));
  CHECK(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &req, h) > 0);
}

static void expect_status(const char *s, int status) {
  ts_request req;
  ts_header h[32];
  int r = parse(s, &req, h);
  CHECK(r == TS_HTTP_ERROR);
  if (r == TS_HTTP_ERROR && req.status != status)
    fprintf(stderr, "  for %.40s: status %d, wanted %d\n", s, req.status, status);
  CHECK(r == TS_HTTP_ERROR && req.status == status);
}

static void test_parser_errors(void) {
  expect_status("G@T / HTTP/1.1\r\n\r\n", 400);
  expect_status("GET  / HTTP/1.1\r\n\r\n", 400);
  expect_status("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400);
  expect_status("GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n", 400);
  expect_status("GET / HTTP/1.1\r\n continued\r\n\r\n", 400);
  expect_status("GET / HTTX/1.1\r\n\r\n", 400);
  expect_status("GET / HTTP/2.0\r\n\r\n", 505);
  expect_status("GET relative HTTP/1.1\r\n\r\n", 400);
  expect_status("GET / HTTP/1.1\rX\r\n\r\n", 400);
  char big[3000];
  memset(big, 'a', sizeof big);
  memcpy(big, "GET /", 5);
  big[sizeof big - 1] = 0;
  expect_status(big, 414); /* incomplete but already over the line limit */
  char hdrs[6000];
  int n = snprintf(hdrs, sizeof hdrs, "GET / HTTP/1.1\r\nX: ");
  memset(hdrs + n, 'b', 5000);
  hdrs[n + 5000] = 0;
  expect_status(hdrs, 431);
  char many[2000] = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 40; i++) strcat(many, "A: b\r\n");
  strcat(many, "\r\n");
  expect_status(many, 431);
}

/* Feed s[0..n) ending a piece at each of cuts[0..ncuts) (the last is n), each
 * piece copied before the guard page at a new place, as a connection whose
 * buffer grows and moves would. Returns the first answer that is not
 * INCOMPLETE, else INCOMPLETE. */
static int feed(const char *s, size_t n, const size_t *cuts, size_t ncuts, ts_request *req, ts_header *h) {
  size_t last = 0;
  int r = TS_HTTP_INCOMPLETE;
  for (size_t k = 0; k < ncuts; k++) {
    r = ts_http_parse_request_resume(guarded(s, cuts[k]), cuts[k], last, &LIM, req, h, 32);
    if (r != TS_HTTP_INCOMPLETE) return r;
    last = cuts[k];
  }
  (void)n;
  return r;
}

static int same_str(ts_str a, ts_str b) { return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0); }

/* The same answer, compared by content (the two buffers differ). */
static int same_answer(int r1, const ts_request *a, int r2, const ts_request *b) {
  if (r1 != r2) return 0;
  if (r1 == TS_HTTP_ERROR) return a->status == b->status;
  if (r1 < 0) return 1;
  if (!same_str(a->method, b->method) || !same_str(a->target, b->target) || !same_str(a->path, b->path) ||
      !same_str(a->query, b->query) || a->minor != b->minor || a->num_headers != b->num_headers)
    return 0;
  for (size_t i = 0; i < a->num_headers; i++)
    if (!same_str(a->headers[i].name, b->headers[i].name) || !same_str(a->headers[i].value, b->headers[i].value))
      return 0;
  return 1;
}

static void check_pieces_like_whole(const char *s) {
  size_t n = strlen(s);
  ts_request whole, req;
  ts_header hw[32], h[32];
  /* the whole answer is copied out of the guard area before feeding reuses it */
  char *copy = malloc(n + 1);
  memcpy(copy, s, n + 1);
  int rw = ts_http_parse_request(copy, n, &LIM, &whole, hw, 32);
  size_t *cuts = malloc((n + 1) * sizeof *cuts);
  int bad = 0;
  for (size_t k = 0; k < n; k++) cuts[k] = k + 1; /* a byte at a time */
  bad += !same_answer(rw, &whole, feed(s, n, cuts, n, &req, h), &req);
  for (size_t k1 = 1; k1 < n; k1++) { /* every split in two, and in three while short */
    size_t two[2] = {k1, n};
    bad += !same_answer(rw, &whole, feed(s, n, two, 2, &req, h), &req);
    for (size_t k2 = k1 + 1; n <= 200 && k2 < n; k2++) {
      size_t three[3] = {k1, k2, n};
      bad += !same_answer(rw, &whole, feed(s, n, three, 3, &req, h), &req);
    }
  }
  if (bad) fprintf(stderr, "%d ways of feeding differ from the whole for: %.60s\n", bad, s);
  CHECK(bad == 0);
  free(cuts);
  free(copy);
}

static void test_parser_resume(void) {
  check_pieces_like_whole("GET /app/x?y=1&z HTTP/1.1\r\nHost: a.b\r\nX-Empty:\r\nX-Sp:  v  \r\n\r\nBODY");
  check_pieces_like_whole("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
  check_pieces_like_whole("\n\nGET / HTTP/1.0\nHost: a\n\n");
  check_pieces_like_whole("GET / HTTP/1.1\r\nA: b\n\r\n");
  check_pieces_like_whole("GET / HTTP/1.1\nA: b\r\n\n");
  check_pieces_like_whole("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc");
  check_pieces_like_whole("GET / HTTP/1.1\r\nHost: a\r\n"); /* never complete */
  check_pieces_like_whole("G@T / HTTP/1.1\r\n\r\n");
  check_pieces_like_whole("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n");
  check_pieces_like_whole("GET / HTTP/1.1\r\n continued\r\n\r\n");
  check_pieces_like_whole("GET / HTTP/2.0\r\n\r\n");
  check_pieces_like_whole("GET / HTTP/1.1\rX\r\n\r\n");
  check_pieces_like_whole("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n");
  char big[3000];
  memset(big, 'a', sizeof big);
  memcpy(big, "GET /", 5);
  big[sizeof big - 1] = 0;
  check_pieces_like_whole(big); /* request line over its limit, never ended */
  char hdrs[6000];
  int n = snprintf(hdrs, sizeof hdrs, "GET / HTTP/1.1\r\nX: ");
  memset(hdrs + n, 'b', 5000);
  hdrs[n + 5000] = 0;
  check_pieces_like_whole(hdrs); /* head over its limit */
  char many[2000] = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 40; i++) strcat(many, "A: b\r\n");
  strcat(many, "\r\n");
  check_pieces_like_whole(many); /* too many headers */

  /* head_end alone: leading empty lines are not the end; resuming finds the same end */
  const char *s = "\r\n\nGET / HTTP/1.1\r\nA: b\r\n\r\nrest";
  size_t len = strlen(s), want = len - 4;
  CHECK(ts_http_head_end(s, len, 0) == want);
  for (size_t k = 0; k < want; k++) CHECK(ts_http_head_end(s, len, k) == want);
  for (size_t k = 0; k < want; k++) CHECK(ts_http_head_end(guarded(s, k), k, 0) == 0);
}

/* A head sent a byte at a time: resuming looks at each byte a bounded
 * number of times; re-parsing from the start each time is quadratic. */
static void test_parser_resume_is_linear(void) {
  char head[4096] = "GET /app HTTP/1.1\r\nHost: example.org\r\n";
  for (int i = 0; i < 28; i++)
    snprintf(head + strlen(head), sizeof head - strlen(head), "X-Header-%02d: %s\r\n", i,
             "a value of some length, like a cookie or a user agent");
  strcat(head, "\r\n");
  size_t n = strlen(head);
  CHECK(n > 1500 && n < LIM.max_header_bytes);
  ts_request req;
  ts_header h[32];
  size_t last = 0;
  int r = TS_HTTP_INCOMPLETE;
  ts_http_examined = 0;
  for (size_t k = 1; k <= n && r == TS_HTTP_INCOMPLETE; k++) {
    r = ts_http_parse_request_resume(guarded(head, k), k, last, &LIM, &req, h, 32);
    last = k;
  }
  size_t resumed = ts_http_examined;
  CHECK(r == (int)n && req.num_headers == 29);
  ts_http_examined = 0;
  for (size_t k = 1; k <= n; k++) ts_http_parse_request(guarded(head, k), k, &LIM, &req, h, 32);
  size_t from_start = ts_http_examined;
  if (resumed > 8 * n) fprintf(stderr, "resuming looked at %zu bytes for a %zu-byte head\n", resumed, n);
  CHECK(resumed <= 8 * n);
  CHECK(from_start > 100 * n); /* the counter sees the quadratic way */
}

static int framing(const char *s, uint64_t max_body, ts_framing *f) {
  ts_request req;
  ts_header h[32];
  if (parse(s, &req, h) <= 0) return -99;
  return ts_http_framing(&req, max_body, f);
}

static void test_framing(void) {
  ts_framing f;
  CHECK(framing("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n", 100, &f) == 0 && f.content_length == 12 &&
        f.keep_alive && !f.chunked);
  CHECK(framing("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 100, &f) == 0 && f.chunked);
  CHECK(framing("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 100, &f) == 0 && !f.keep_alive);
  CHECK(framing("GET / HTTP/1.0\r\n\r\n", 100, &f) == 0 && !f.keep_alive);
  CHECK(framing("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 100, &f) == 0 && f.keep_alive);
  CHECK(framing("GET / HTTP/1.1\r\n\r\n", 100, &f) == -1 && f.status == 400);
  CHECK(framing("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 100, &f) == -1 && f.status == 400);
  CHECK(framing("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 100, &f) == -1 && f.status == 413);
  CHECK(framing("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 100, &f) == -1 &&
        f.status == 413);
  CHECK(framing("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 100, &f) == -1 && f.status == 400);
  CHECK(framing("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 100, &f) == -1 &&
        f.status == 501);
  CHECK(framing("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 100, &f) ==
            -1 &&
        f.status == 400);
  CHECK(framing("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", 100, &f) == 0 &&
        f.expect_continue);
}

static void test_chunked(void) {
  const char *raw = "5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\nNEXT";
  size_t n = strlen(raw);
  char buf[128];
  /* byte by byte: the result must not depend on how input arrives */
  memcpy(buf, raw, n);
  ts_chunked d;
  ts_chunked_init(&d, 0);
  int r = 0;
  for (size_t k = 1; k <= n && r == 0; k++) r = ts_chunked_decode(&d, buf, k, 1000);
  CHECK(r == 1);
  CHECK(d.dst == 11 && memcmp(buf, "hello world", 11) == 0);
  CHECK(d.src == n - 4);
  memcpy(buf, raw, n);
  ts_chunked_init(&d, 0);
  CHECK(ts_chunked_decode(&d, buf, n, 5) == -2);
  const char *bad[] = {"x\r\n", "5\r\nhelloX", "\r\n", "fffffffffffffffff\r\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t bn = strlen(bad[i]);
    memcpy(buf, bad[i], bn);
    ts_chunked_init(&d, 0);
    CHECK(ts_chunked_decode(&d, buf, bn, 1000) == -1);
  }
}

static void test_wagi_env(void) {
  ts_header h[] = {
      {TS_STR_LIT("Host"), TS_STR_LIT("example.org:81")},  {TS_STR_LIT("User-Agent"), TS_STR_LIT("t/1")},
      {TS_STR_LIT("Cookie"), TS_STR_LIT("a=1")},           {TS_STR_LIT("cookie"), TS_STR_LIT("b=2")},
      {TS_STR_LIT("Authorization"), TS_STR_LIT("secret")}, {TS_STR_LIT("Content-Type"), TS_STR_LIT("text/x")}};
  ts_wagi_request r = {0};
  r.method = TS_STR_LIT("POST");
  r.path = TS_STR_LIT("/app/a%2Fb/c%00d");
  r.query = TS_STR_LIT("x=1&&y");
  r.script_name = TS_STR_LIT("/app");
  r.matched_route = TS_STR_LIT("/app");
  r.headers = h;
  r.num_headers = 6;
  r.host = TS_STR_LIT("example.org:81");
  r.server_name = "fallback";
  r.server_port = 9000;
  r.remote_addr = "10.0.0.1";
  r.remote_port = 5555;
  r.minor = 1;
  r.has_body = 1;
  r.content_length = 7;
  ts_wagi_env e = {0};
  for (int round = 0; round < 2; round++) { /* reuse works */
    CHECK(ts_wagi_build(&r, &e) == 0);
    CHECK(strcmp(ts_wagi_getenv(&e, "PATH_INFO"), "/a/b/cd") == 0);
    CHECK(strcmp(ts_wagi_getenv(&e, "X_RAW_PATH_INFO"), "/a%2Fb/c%00d") == 0);
    CHECK(strcmp(ts_wagi_getenv(&e, "SCRIPT_NAME"), "/app") == 0);
    CHECK(strcmp(ts_wagi_getenv(&e, "SERVER_NAME"), "example.org") == 0);
    /* the port the request was received on, never the Host header's (RFC 3875 4.1.15) */
    CHECK(strcmp(ts_wagi_getenv(&e, "SERVER_PORT"), "9000") == 0);
    CHECK(strcmp(ts_wagi_getenv(&e, "HTTP_USER_AGENT"), "t/1") == 0);
    CHECK(strcmp(ts_wagi_getenv(&e, "HTTP_COOKIE"), "a=1; b=2") == 0);
    CHECK(ts_wagi_getenv(&e, "HTTP_AUTHORIZATION") == NULL);
    CHECK(strcmp(ts_wagi_getenv(&e, "CONTENT_TYPE"), "text/x") == 0);
    CHECK(strcmp(ts_wagi_getenv(&e, "CONTENT_LENGTH"), "7") == 0);
    CHECK(strcmp(ts_wagi_getenv(&e, "X_FULL_URL"), "http://example.org:81/app/a%2Fb/c%00d?x=1&&y") == 0);
    CHECK(strcmp(ts_wagi_getenv(&e, "GATEWAY_INTERFACE"), "CGI/1.1") == 0);
    CHECK(e.argc == 4 && strcmp(e.argv[0], "/app/a%2Fb/c%00d") == 0 && strcmp(e.argv[1], "x=1") == 0 &&
          strcmp(e.argv[2], "") == 0 && strcmp(e.argv[3], "y") == 0);
  }
  r.host = (ts_str){"", 0};
  r.query = (ts_str){"", 0};
  r.has_body = 0;
  r.content_length = 0;
  CHECK(ts_wagi_build(&r, &e) == 0);
  CHECK(strcmp(ts_wagi_getenv(&e, "SERVER_NAME"), "fallback") == 0);
  CHECK(strcmp(ts_wagi_getenv(&e, "SERVER_PORT"), "9000") == 0);
  CHECK(strcmp(ts_wagi_getenv(&e, "CONTENT_LENGTH"), "0") == 0); /* no body: "0", as WAGI */
  CHECK(e.argc == 1);
  /* a body of length 0 is still a body */
  r.has_body = 1;
  CHECK(ts_wagi_build(&r, &e) == 0 && strcmp(ts_wagi_getenv(&e, "CONTENT_LENGTH"), "0") == 0);
  /* no Host at all (HTTP/1.0): a NULL view is fine (UBSan) */
  r.host = (ts_str){NULL, 0};
  CHECK(ts_wagi_build(&r, &e) == 0 && strcmp(ts_wagi_getenv(&e, "SERVER_NAME"), "fallback") == 0);
  ts_wagi_env_free(&e);
}

static int cgi(const char *s, ts_cgi_response *r, ts_header *h) {
  size_t n = strlen(s);
  return ts_cgi_parse(guarded(s, n), n, r, h, 16, 16384);
}

static void test_cgi_output(void) {
  ts_cgi_response r;
  ts_header h[16];
  CHECK(cgi("Content-Type: text/plain\n\nbody", &r, h) == 0 && r.status == 200 && r.num_headers == 1);
  CHECK(cgi("X-A: 1\r\nStatus: 418 Teapot\r\nContent-Type: t\r\n\r\nb", &r, h) == 0 && r.status == 418 &&
        ts_str_eq(r.reason, "Teapot") && r.num_headers == 2);
  CHECK(cgi("Location: /x\n\n", &r, h) == 0 && r.status == 302);
  CHECK(cgi("Set-Cookie: a\nSet-Cookie: b\nContent-Type: t\n\n", &r, h) == 0 && r.num_headers == 3 &&
        ts_str_eq(h[0].value, "a") && ts_str_eq(h[1].value, "b"));
  CHECK(cgi("Content-Type: t\nContent-Length: 99\nConnection: close\n\nxy", &r, h) == 0 && r.num_headers == 1);
  CHECK(cgi("Content-Type: t", &r, h) == 0 && r.body_off == 15); /* no blank line: no body */
  CHECK(cgi("X-A: 1\n\nbody", &r, h) == -1 && r.error);
  CHECK(cgi("", &r, h) == -1);
  CHECK(cgi("garbage\n\n", &r, h) == -1);
  CHECK(cgi("Status: abc\n\n", &r, h) == -1);
  CHECK(cgi("Status: 2000\n\n", &r, h) == -1);
  CHECK(cgi("Status: 100 Continue\nContent-Type: t\n\n", &r, h) == -1);
  CHECK(cgi("Content-Type: a\x01\n\n", &r, h) == -1);
  /* a status outside 200-599 never reaches a client */
  CHECK(cgi("Status: 600 Odd\nContent-Type: t\n\n", &r, h) == -1);
  CHECK(cgi("Status: 999\nContent-Type: t\n\n", &r, h) == -1);
  CHECK(cgi("Status: 599\nContent-Type: t\n\n", &r, h) == 0 && r.status == 599);
  CHECK(cgi("Status: 199\nContent-Type: t\n\n", &r, h) == -1);
  /* hop-by-hop, framing, server-owned and proxy-steering fields are dropped */
  CHECK(cgi("Content-Type: t\nUpgrade: h2c\nTE: trailers\nProxy-Connection: keep-alive\nTrailer: X\n"
            "Keep-Alive: 5\nTransfer-Encoding: chunked\nDate: x\nX-Accel-Redirect: /other/\n"
            "x-accel-limit-rate: 1\nX-Accel-Buffering: no\nProxy-Authenticate: Basic\nX-Kept: 1\n\n",
            &r, h) == 0 &&
        r.num_headers == 2 && ts_str_eq(h[0].name, "Content-Type") && ts_str_eq(h[1].name, "X-Kept"));
  CHECK(ts_cgi_header_dropped(TS_STR_LIT("X-ACCEL-EXPIRES")) && !ts_cgi_header_dropped(TS_STR_LIT("X-Accel")) &&
        !ts_cgi_header_dropped(TS_STR_LIT("Set-Cookie")));
  /* one response-header limit: name + value + 4 per kept line */
  {
    static char big[9000];
    memcpy(big, "Content-Type: t\nX-Big: ", 23);
    memset(big + 23, 'a', 4000);
    memcpy(big + 4023, "\n\nbody", 7);
    size_t n = strlen(big);
    CHECK(ts_cgi_parse(guarded(big, n), n, &r, h, 16, 16384) == 0);
    CHECK(ts_cgi_parse(guarded(big, n), n, &r, h, 16, 4000) == -1 && r.over_head_limit);
    /* exactly at the limit is fine: 12+1+4 + 5+4000+4 */
    CHECK(ts_cgi_parse(guarded(big, n), n, &r, h, 16, 17 + 4009) == 0);
    CHECK(ts_cgi_parse(guarded(big, n), n, &r, h, 16, 17 + 4008) == -1);
  }
}

static void test_host_syntax(void) {
  CHECK(ts_http_host_valid(TS_STR_LIT("")));
  CHECK(ts_http_host_valid(TS_STR_LIT("example.org")));
  CHECK(ts_http_host_valid(TS_STR_LIT("example.org:8080")));
  CHECK(ts_http_host_valid(TS_STR_LIT("[::1]:80")));
  CHECK(ts_http_host_valid(TS_STR_LIT("[::1]")));
  CHECK(ts_http_host_valid(TS_STR_LIT("10.0.0.1:")));
  CHECK(ts_http_host_valid(TS_STR_LIT("xn--bcher-kva.example")));
  CHECK(ts_http_host_valid(TS_STR_LIT("a%20b")));
  CHECK(!ts_http_host_valid(TS_STR_LIT("a/b")));
  CHECK(!ts_http_host_valid(TS_STR_LIT("a b")));
  CHECK(!ts_http_host_valid(TS_STR_LIT("[::1")));
  CHECK(!ts_http_host_valid(TS_STR_LIT("[]")));
  CHECK(!ts_http_host_valid(TS_STR_LIT("x:abc")));
  CHECK(!ts_http_host_valid(TS_STR_LIT(":80")));
  CHECK(!ts_http_host_valid(TS_STR_LIT("a:b:c")));
  CHECK(!ts_http_host_valid(TS_STR_LIT("user@host")));
  CHECK(!ts_http_host_valid(TS_STR_LIT("a%2")));
  ts_framing f;
  CHECK(framing("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 100, &f) == -1 && f.status == 400);
  CHECK(framing("GET / HTTP/1.1\r\nHost: ok.example:81\r\n\r\n", 100, &f) == 0);
  ts_request req;
  ts_header h[32];
  CHECK(parse("GET http://abs.example:90/x?q HTTP/1.1\r\nHost: other\r\n\r\n", &req, h) > 0 &&
        ts_str_eq(req.authority, "abs.example:90") && ts_str_eq(req.path, "/x"));
  CHECK(parse("GET /x HTTP/1.1\r\nHost: h\r\n\r\n", &req, h) > 0 && req.authority.n == 0);
  CHECK(parse("GET http://a b/x HTTP/1.1\r\nHost: h\r\n\r\n", &req, h) == TS_HTTP_ERROR);
  CHECK(parse("GET http://u@h/x HTTP/1.1\r\nHost: h\r\n\r\n", &req, h) == TS_HTTP_ERROR);
}

static void test_forwarded(void) {
  ts_request req;
  ts_header h[32];
  char addr[TS_WAGI_ADDR_MAX];
  ts_wagi_request w = {0};
  w.remote_addr = "127.0.0.1";
  w.remote_port = 5000;
  w.server_port = 9000;
  CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nX-Real-IP: 10.1.2.3\r\nX-Forwarded-Port: 8080\r\n\r\n", &req, h) > 0);
  ts_wagi_apply_forwarded(&w, &req, addr);
  CHECK(strcmp(w.remote_addr, "10.1.2.3") == 0 && w.remote_port == 0 && w.server_port == 8080);
  ts_wagi_request v = {0};
  v.remote_addr = "127.0.0.1";
  v.server_port = 9000;
  CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nX-Real-IP: 1.2.3.4\" x\r\nX-Forwarded-Port: 99999\r\n\r\n", &req, h) > 0);
  ts_wagi_apply_forwarded(&v, &req, addr);
  CHECK(strcmp(v.remote_addr, "127.0.0.1") == 0 && v.server_port == 9000); /* malformed: ignored */
  CHECK(parse("GET / HTTP/1.1\r\nHost: h\r\nX-Real-IP: ::1\r\n\r\n", &req, h) > 0);
  ts_wagi_apply_forwarded(&v, &req, addr);
  CHECK(strcmp(v.remote_addr, "::1") == 0 && v.server_port == 9000);
}

static void test_log_escape(void) {
  char out[64];
  CHECK(strcmp(ts_log_escape(out, sizeof out, "/a b", 4), "/a b") == 0);
  CHECK(strcmp(ts_log_escape(out, sizeof out, "a\"b\\c\n\x7f\xff", 8), "a\\x22b\\x5cc\\x0a\\x7f\\xff") == 0);
  CHECK(strcmp(ts_log_escape(out, 6, "\n\n", 2), "\\x0a") == 0); /* never a partial escape */
  CHECK(strcmp(ts_log_escape(out, 1, "abc", 3), "") == 0);
}

static void test_routes(void) {
  ts_route routes[8];
  char err[256];
  int n = ts_routes_parse("# c\n/ root\n/api api # trailing\n\n/api/v2/ v2\n", routes, 8, err, sizeof err);
  CHECK(n == 3);
  CHECK(n == 3 && strcmp(routes[0].prefix, "/api/v2/") == 0 && strcmp(routes[2].prefix, "/") == 0);
  CHECK(ts_routes_parse("api x\n", routes, 8, err, sizeof err) == -1 && strstr(err, "line 1"));
  CHECK(ts_routes_parse("/a x y\n", routes, 8, err, sizeof err) == -1);
  CHECK(ts_routes_parse("/a ../x\n", routes, 8, err, sizeof err) == -1);
  CHECK(ts_routes_parse("/a x\n/a y\n", routes, 8, err, sizeof err) == -1);
  CHECK(ts_route_prefix_match("/", "/anything", 9));
  CHECK(ts_route_prefix_match("/api", "/api", 4));
  CHECK(ts_route_prefix_match("/api", "/api/x", 6));
  CHECK(!ts_route_prefix_match("/api", "/apix", 5));
  CHECK(ts_route_prefix_match("/api/", "/api/x", 6));
  CHECK(ts_app_name_valid("hello-1.v2", 10));
  CHECK(!ts_app_name_valid(".hidden", 7) && !ts_app_name_valid("a/b", 3) && !ts_app_name_valid("_tiramisu", 9));
}

int main(void) {
  page = (size_t)sysconf(_SC_PAGESIZE);
  guard_base = mmap(NULL, page * 5, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (guard_base == MAP_FAILED || mprotect(guard_base + page * 4, page, PROT_NONE)) return 2;
  test_parser_basic();
  test_parser_errors();
  test_parser_resume();
  test_parser_resume_is_linear();
  test_framing();
  test_chunked();
  test_wagi_env();
  test_cgi_output();
  test_routes();
  test_log_escape();
  test_host_syntax();
  test_forwarded();
  printf("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
