#include "ts_http.h"

#include <ctype.h>
#include <string.h>

static inline int is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  switch (c) {
  case '!':
  case '#':
  case '$':
  case '%':
  case '&':
  case '\'':
  case '*':
  case '+':
  case '-':
  case '.':
  case '^':
  case '_':
  case '`':
  case '|':
  case '~': return 1;
  default: return 0;
  }
}

static int fail(ts_request *req, int status) {
  req->status = status;
  return TS_HTTP_ERROR;
}

int ts_http_host_valid(ts_str v) {
  size_t i = 0;
  if (!v.n) return 1;
  if (v.p[0] == '[') { /* IP-literal: hex digits, ':', '.', and IPvFuture's "v" + unreserved / sub-delims */
    for (i = 1; i < v.n && v.p[i] != ']'; i++)
      if (!isalnum((unsigned char)v.p[i]) && !strchr(":.-_~!$&'()*+,;=", v.p[i])) return 0;
    if (i == v.n || i == 1) return 0;
    i++;
  } else {
    for (; i < v.n && v.p[i] != ':'; i++) {
      unsigned char c = (unsigned char)v.p[i];
      if (c == '%') {
        if (i + 2 >= v.n || !isxdigit((unsigned char)v.p[i + 1]) || !isxdigit((unsigned char)v.p[i + 2])) return 0;
        i += 2;
      } else if (!isalnum(c) && !strchr("-._~!$&'()*+,;=", c)) {
        return 0;
      }
    }
    if (i == 0) return 0; /* ":80": no host */
  }
  if (i == v.n) return 1;
  if (v.p[i] != ':') return 0;
  for (i++; i < v.n; i++)
    if (!isdigit((unsigned char)v.p[i])) return 0;
  return 1;
}

/* Split the target into path and query; absolute-form keeps only the path. */
static int split_target(ts_request *req) {
  ts_str t = req->target;
  ts_str path = t;
  if (t.n == 1 && t.p[0] == '*') {
    req->path = t;
    req->query = (ts_str){t.p + 1, 0};
    return 0;
  }
  if (t.p[0] != '/') {
    size_t skip = 0;
    if (t.n >= 7 && ts_str_ieq((ts_str){t.p, 7}, "http://")) skip = 7;
    else if (t.n >= 8 && ts_str_ieq((ts_str){t.p, 8}, "https://")) skip = 8;
    else return -1;
    size_t i = skip;
    while (i < t.n && t.p[i] != '/' && t.p[i] != '?') i++;
    if (i == skip) return -1; /* no authority */
    req->authority = (ts_str){t.p + skip, i - skip};
    if (!ts_http_host_valid(req->authority)) return -1;
    if (i == t.n || t.p[i] == '?') {
      static const char slash[] = "/";
      req->path = (ts_str){slash, 1};
      req->query = i < t.n ? (ts_str){t.p + i + 1, t.n - i - 1} : (ts_str){t.p + t.n, 0};
      return 0;
    }
    path = (ts_str){t.p + i, t.n - i};
  }
  const char *q = memchr(path.p, '?', path.n);
  if (q) {
    req->path = (ts_str){path.p, (size_t)(q - path.p)};
    req->query = (ts_str){q + 1, path.n - (size_t)(q - path.p) - 1};
  } else {
    req->path = path;
    req->query = (ts_str){path.p + path.n, 0};
  }
  return 0;
}

#ifdef TS_HTTP_COUNT_EXAMINED
size_t ts_http_examined;
#define EXAMINED(n) (ts_http_examined += (n))
#else
#define EXAMINED(n) ((void)0)
#endif

/* The end of the head: the offset just past the LF of its first empty line,
 * or 0. Only LFs at `from` or later are candidates (the caller saw no end
 * before it); each looks back at most two bytes. Leading empty lines are
 * not the end (RFC 9112 2.2): *line0 is where the request line starts. */
static size_t find_head_end(const unsigned char *b, size_t len, size_t from, size_t *line0) {
  size_t skip = 0;
  while (skip < len && (b[skip] == '\r' || b[skip] == '\n')) skip++;
  EXAMINED(skip + 1);
  *line0 = skip;
  size_t p = from > skip + 1 ? from : skip + 1;
  while (p < len) {
    const unsigned char *lf = memchr(b + p, '\n', len - p);
    if (!lf) {
      EXAMINED(len - p);
      return 0;
    }
    size_t at = (size_t)(lf - b);
    EXAMINED(at - p + 3);
    if (b[at - 1] == '\n' || (b[at - 1] == '\r' && at >= 2 && b[at - 2] == '\n')) return at + 1;
    p = at + 1;
  }
  return 0;
}

size_t ts_http_head_end(const char *buf, size_t len, size_t prev_scanned) {
  size_t line0;
  return find_head_end((const unsigned char *)buf, len, prev_scanned, &line0);
}

static int parse_head(const char *buf, size_t len, const ts_http_limits *lim, ts_request *req, ts_header *headers,
                      size_t header_cap);

int ts_http_parse_request_resume(const char *buf, size_t len, size_t last_len, const ts_http_limits *lim,
                                 ts_request *req, ts_header *headers, size_t header_cap) {
  if (last_len > 0 && last_len <= len) {
    size_t line0;
    size_t end = find_head_end((const unsigned char *)buf, len, last_len, &line0);
    /* Without the blank line only the limits can change the answer: a full
     * parse runs once when the request line crosses its limit and once when
     * the head does, so an over-long head is refused as early as before. */
    int crossed_line_limit = last_len <= line0 + lim->max_request_line && len > line0 + lim->max_request_line;
    if (!end && !crossed_line_limit && len <= lim->max_header_bytes) {
      req->num_headers = 0;
      req->headers = headers;
      req->status = 0;
      return TS_HTTP_INCOMPLETE;
    }
  }
  return parse_head(buf, len, lim, req, headers, header_cap);
}

int ts_http_parse_request(const char *buf, size_t len, const ts_http_limits *lim, ts_request *req, ts_header *headers,
                          size_t header_cap) {
  return parse_head(buf, len, lim, req, headers, header_cap);
}

static int parse_head(const char *buf, size_t len, const ts_http_limits *lim, ts_request *req, ts_header *headers,
                      size_t header_cap) {
  const unsigned char *b = (const unsigned char *)buf;
  size_t i = 0, cap = header_cap < lim->max_headers ? header_cap : lim->max_headers;
  EXAMINED(len); /* an upper bound: it stops at the head's end or the first error */
  req->num_headers = 0;
  req->headers = headers;
  req->status = 0;

  while (i < len && (b[i] == '\r' || b[i] == '\n')) i++;
  size_t line0 = i;

  size_t m0 = i;
  while (i < len && is_tchar(b[i])) i++;
  if (i == len) goto line_incomplete;
  if (i == m0 || b[i] != ' ') return fail(req, 400);
  req->method = (ts_str){buf + m0, i - m0};
  i++;

  size_t t0 = i;
  while (i < len && b[i] > 0x20 && b[i] < 0x7f) i++;
  if (i == len) goto line_incomplete;
  if (i == t0 || b[i] != ' ') {
    if (i - line0 > lim->max_request_line) return fail(req, 414);
    return fail(req, 400);
  }
  req->target = (ts_str){buf + t0, i - t0};
  i++;

  static const char proto[] = "HTTP/";
  for (size_t k = 0; k < 5; k++) {
    if (i + k == len) goto line_incomplete;
    if (b[i + k] != (unsigned char)proto[k]) return fail(req, 400);
  }
  if (len - i < 8) goto line_incomplete;
  if (b[i + 5] < '0' || b[i + 5] > '9' || b[i + 6] != '.' || b[i + 7] < '0' || b[i + 7] > '9') return fail(req, 400);
  if (b[i + 5] != '1') return fail(req, 505);
  req->minor = b[i + 7] == '0' ? 0 : 1; /* 1.x with x > 1 is served as 1.1 */
  i += 8;
  if (i == len) goto line_incomplete;
  if (b[i] == '\r') {
    if (++i == len) goto line_incomplete;
    if (b[i] != '\n') return fail(req, 400);
  } else if (b[i] != '\n') {
    return fail(req, 400);
  }
  i++;
  if (i - line0 > lim->max_request_line) return fail(req, 414);
  req->authority = (ts_str){NULL, 0};
  if (split_target(req)) return fail(req, 400);

  for (;;) {
    if (i > lim->max_header_bytes) return fail(req, 431);
    if (i == len) goto incomplete;
    if (b[i] == '\r') {
      if (i + 1 == len) goto incomplete;
      if (b[i + 1] != '\n') return fail(req, 400);
      i += 2;
      break;
    }
    if (b[i] == '\n') {
      i++;
      break;
    }
    if (b[i] == ' ' || b[i] == '\t') return fail(req, 400); /* obs-fold */
    size_t n0 = i;
    while (i < len && is_tchar(b[i])) i++;
    if (i == len) goto incomplete;
    if (i == n0 || b[i] != ':') return fail(req, 400);
    ts_str name = {buf + n0, i - n0};
    i++;
    while (i < len && (b[i] == ' ' || b[i] == '\t')) i++;
    size_t v0 = i;
    while (i < len && b[i] != '\r' && b[i] != '\n') {
      if ((b[i] < 0x20 && b[i] != '\t') || b[i] == 0x7f) return fail(req, 400);
      i++;
    }
    if (i == len) goto incomplete;
    size_t v1 = i;
    while (v1 > v0 && (b[v1 - 1] == ' ' || b[v1 - 1] == '\t')) v1--;
    if (b[i] == '\r') {
      if (i + 1 == len) goto incomplete;
      if (b[i + 1] != '\n') return fail(req, 400);
      i++;
    }
    i++;
    if (req->num_headers >= cap) return fail(req, 431);
    headers[req->num_headers].name = name;
    headers[req->num_headers].value = (ts_str){buf + v0, v1 - v0};
    req->num_headers++;
  }
  if (i > lim->max_header_bytes) return fail(req, 431);
  return (int)i;

line_incomplete:
  if (len - line0 > lim->max_request_line) return fail(req, 414);
incomplete:
  if (len > lim->max_header_bytes) return fail(req, 431);
  return TS_HTTP_INCOMPLETE;
}

const ts_header *ts_http_find_header(const ts_request *req, const char *name) {
  for (size_t i = 0; i < req->num_headers; i++)
    if (ts_str_ieq(req->headers[i].name, name)) return &req->headers[i];
  return NULL;
}

static int parse_u64(ts_str s, uint64_t *out) {
  uint64_t v = 0;
  if (s.n == 0) return -1;
  for (size_t i = 0; i < s.n; i++) {
    if (s.p[i] < '0' || s.p[i] > '9') return -1;
    if (v > (UINT64_MAX - 9) / 10) return -2; /* absurdly large */
    v = v * 10 + (uint64_t)(s.p[i] - '0');
  }
  *out = v;
  return 0;
}

int ts_http_framing(const ts_request *req, uint64_t max_body, ts_framing *f) {
  int have_cl = 0, have_te = 0, hosts = 0, conn_close = 0, conn_keep = 0;
  uint64_t cl = 0;
  memset(f, 0, sizeof *f);
  for (size_t i = 0; i < req->num_headers; i++) {
    const ts_header *h = &req->headers[i];
    if (ts_str_ieq(h->name, "content-length")) {
      uint64_t v;
      int r = parse_u64(h->value, &v);
      if (r == -2) {
        f->status = 413;
        return -1;
      }
      if (r || (have_cl && v != cl)) {
        f->status = 400;
        return -1;
      }
      have_cl = 1;
      cl = v;
    } else if (ts_str_ieq(h->name, "transfer-encoding")) {
      if (have_te || !ts_str_ieq(h->value, "chunked")) {
        /* gzip, compress, stacked codings: we decode only chunked */
        f->status = 501;
        return -1;
      }
      have_te = 1;
    } else if (ts_str_ieq(h->name, "host")) {
      hosts++;
      if (!ts_http_host_valid(h->value)) { /* as nginx does: a/b, "a b", [::1, x:abc */
        f->status = 400;
        return -1;
      }
    } else if (ts_str_ieq(h->name, "connection")) {
      if (ts_str_has_token(h->value, "close")) conn_close = 1;
      if (ts_str_has_token(h->value, "keep-alive")) conn_keep = 1;
    } else if (ts_str_ieq(h->name, "expect")) {
      if (ts_str_ieq(h->value, "100-continue")) f->expect_continue = req->minor >= 1;
      else {
        f->status = 417;
        return -1;
      }
    }
  }
  if (hosts > 1 || (req->minor >= 1 && hosts == 0)) {
    f->status = 400;
    return -1;
  }
  if (have_te && have_cl) { /* request smuggling vector: refuse */
    f->status = 400;
    return -1;
  }
  if (have_te && req->minor == 0) {
    f->status = 400;
    return -1;
  }
  f->chunked = have_te;
  f->has_body = have_te || have_cl;
  f->content_length = cl;
  if (!have_te && cl > max_body) {
    f->status = 413;
    return -1;
  }
  f->keep_alive = req->minor >= 1 ? !conn_close : (conn_keep && !conn_close);
  return 0;
}

enum {
  CH_SIZE,
  CH_EXT,
  CH_SIZE_LF,
  CH_DATA,
  CH_DATA_CR,
  CH_DATA_LF,
  CH_TRAILER_START,
  CH_TRAILER,
  CH_FINAL_LF,
  CH_DONE
};

#define TS_CHUNK_SIDE_MAX 8192 /* extensions + trailers, bytes */

void ts_chunked_init(ts_chunked *d, size_t body_off) {
  memset(d, 0, sizeof *d);
  d->src = d->dst = body_off;
  d->state = CH_SIZE;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int ts_chunked_decode(ts_chunked *d, char *buf, size_t len, uint64_t max_body) {
  while (d->src < len) {
    unsigned char c = (unsigned char)buf[d->src];
    switch (d->state) {
    case CH_SIZE: {
      int v = hexval(c);
      if (v >= 0) {
        if (++d->digits > 15) return -1;
        d->remaining = d->remaining * 16 + (uint64_t)v;
        d->src++;
        break;
      }
      if (d->digits == 0) return -1;
      if (c == ';' || c == ' ' || c == '\t') d->state = CH_EXT;
      else if (c == '\r') d->state = CH_SIZE_LF;
      else if (c == '\n') goto size_done;
      else return -1;
      d->src++;
      break;
    }
    case CH_EXT:
      if (++d->side_bytes > TS_CHUNK_SIDE_MAX) return -1;
      d->src++;
      if (c == '\n') goto size_done_consumed;
      break;
    case CH_SIZE_LF:
      if (c != '\n') return -1;
    size_done:
      d->src++;
    size_done_consumed:
      if (d->remaining == 0) {
        d->state = CH_TRAILER_START;
      } else {
        if (d->total + d->remaining > max_body) return -2;
        d->state = CH_DATA;
      }
      d->digits = 0;
      break;
    case CH_DATA: {
      size_t avail = len - d->src;
      size_t take = d->remaining < avail ? (size_t)d->remaining : avail;
      if (d->dst != d->src) memmove(buf + d->dst, buf + d->src, take);
      d->dst += take;
      d->src += take;
      d->remaining -= take;
      d->total += take;
      if (d->remaining == 0) d->state = CH_DATA_CR;
      break;
    }
    case CH_DATA_CR:
      d->src++;
      if (c == '\r') d->state = CH_DATA_LF;
      else if (c == '\n') d->state = CH_SIZE;
      else return -1;
      break;
    case CH_DATA_LF:
      d->src++;
      if (c != '\n') return -1;
      d->state = CH_SIZE;
      break;
    case CH_TRAILER_START:
      d->src++;
      if (c == '\r') d->state = CH_FINAL_LF;
      else if (c == '\n') {
        d->state = CH_DONE;
        return 1;
      } else {
        if (++d->side_bytes > TS_CHUNK_SIDE_MAX) return -1;
        d->state = CH_TRAILER;
      }
      break;
    case CH_TRAILER:
      d->src++;
      if (++d->side_bytes > TS_CHUNK_SIDE_MAX) return -1;
      if (c == '\n') d->state = CH_TRAILER_START;
      break;
    case CH_FINAL_LF:
      d->src++;
      if (c != '\n') return -1;
      d->state = CH_DONE;
      return 1;
    case CH_DONE: return 1;
    }
  }
  return d->state == CH_DONE ? 1 : 0;
}

const char *ts_http_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 206: return "Partial Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 303: return "See Other";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 308: return "Permanent Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 411: return "Length Required";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 417: return "Expectation Failed";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default:
    return status < 200   ? "Informational"
           : status < 300 ? "OK"
           : status < 400 ? "Redirect"
           : status < 500 ? "Client Error"
                          : "Server Error";
  }
}

size_t ts_http_percent_decode(ts_str src, char *dst) {
  size_t o = 0;
  for (size_t i = 0; i < src.n; i++) {
    if (src.p[i] == '%' && i + 2 < src.n) {
      int hi = hexval((unsigned char)src.p[i + 1]), lo = hexval((unsigned char)src.p[i + 2]);
      if (hi >= 0 && lo >= 0) {
        dst[o++] = (char)(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    dst[o++] = src.p[i];
  }
  return o;
}
