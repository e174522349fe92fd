#include "ts_wagi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int add_env_n(ts_wagi_env *e, const char *name, size_t nlen, const char *val, size_t vlen) {
  if (ts_buf_append(&e->env_arena, name, nlen) || ts_buf_append(&e->env_arena, "", 1) ||
      ts_buf_append(&e->env_arena, val, vlen) || ts_buf_append(&e->env_arena, "", 1))
    return -1;
  e->envc++;
  return 0;
}

static int add_env(ts_wagi_env *e, const char *name, const char *val) {
  return add_env_n(e, name, strlen(name), val, strlen(val));
}

static int add_env_str(ts_wagi_env *e, const char *name, ts_str v) {
  return add_env_n(e, name, strlen(name), v.p, v.n);
}

static int add_arg(ts_wagi_env *e, const char *p, size_t n) {
  if (ts_buf_append(&e->arg_arena, p, n) || ts_buf_append(&e->arg_arena, "", 1)) return -1;
  e->argc++;
  return 0;
}

/* Arena offsets become pointers only at the end: the arenas may move while growing. */
static int fixup(ts_wagi_env *e) {
  /* Capacities are raised only once the allocation succeeded, so a failure
   * leaves the arrays as they were (usable for a smaller request). */
  if (e->envc > e->cap_env) {
    size_t cap = e->envc + 16;
    const char **names = malloc(cap * sizeof *names), **values = malloc(cap * sizeof *values);
    if (!names || !values) {
      free(names);
      free(values);
      return -1;
    }
    free(e->names);
    free(e->values);
    e->names = names;
    e->values = values;
    e->cap_env = cap;
  }
  if (e->argc > e->cap_arg) {
    size_t cap = e->argc + 16;
    const char **argv = malloc(cap * sizeof *argv);
    if (!argv) return -1;
    free(e->argv);
    e->argv = argv;
    e->cap_arg = cap;
  }
  const char *p = e->env_arena.p;
  for (size_t i = 0; i < e->envc; i++) {
    e->names[i] = p;
    p += strlen(p) + 1;
    e->values[i] = p;
    p += strlen(p) + 1;
  }
  p = e->arg_arena.p;
  for (size_t i = 0; i < e->argc; i++) {
    e->argv[i] = p;
    p += strlen(p) + 1;
  }
  return 0;
}

/* Guest-visible strings are C strings: a NUL inside a value would cut it. The
 * HTTP parser rejects NUL in heads, and percent-decoding may produce one, so
 * decoded NULs are dropped. */
static size_t decode_no_nul(ts_str s, char *dst) {
  size_t n = ts_http_percent_decode(s, dst), o = 0;
  for (size_t i = 0; i < n; i++)
    if (dst[i]) dst[o++] = dst[i];
  return o;
}

static void host_split(ts_str host, ts_str *name, ts_str *port) {
  *name = host;
  *port = (ts_str){host.p, 0};
  if (!host.n) return; /* p may be NULL: no arithmetic or memchr on it (HTTP/1.0 without Host) */
  port->p = host.p + host.n;
  if (host.p[0] == '[') { /* [v6]:port */
    const char *close = memchr(host.p, ']', host.n);
    if (close) {
      size_t k = (size_t)(close - host.p) + 1;
      *name = (ts_str){host.p, k};
      if (k < host.n && host.p[k] == ':') *port = (ts_str){host.p + k + 1, host.n - k - 1};
    }
    return;
  }
  const char *colon = memchr(host.p, ':', host.n);
  if (colon) {
    *name = (ts_str){host.p, (size_t)(colon - host.p)};
    *port = (ts_str){colon + 1, host.n - (size_t)(colon - host.p) - 1};
  }
}

int ts_wagi_build(const ts_wagi_request *r, ts_wagi_env *e) {
  char num[32];
  e->env_arena.n = e->arg_arena.n = 0;
  e->envc = e->argc = 0;

  /* PATH_INFO: what follows SCRIPT_NAME in the path. */
  ts_str raw_info = {r->path.p + r->path.n, 0};
  if (r->info_off_set && r->info_off <= r->path.n)
    raw_info = (ts_str){r->path.p + r->info_off, r->path.n - r->info_off};
  else if (r->path.n >= r->script_name.n)
    raw_info = (ts_str){r->path.p + r->script_name.n, r->path.n - r->script_name.n};
  char *decoded = malloc(raw_info.n + 1);
  if (!decoded) return -1;
  size_t dn = decode_no_nul(raw_info, decoded);

  ts_str host_name, host_port;
  host_split(r->host, &host_name, &host_port);
  int rc = 0;
  rc |= add_env(e, "GATEWAY_INTERFACE", "CGI/1.1");
  rc |= add_env_str(e, "REQUEST_METHOD", r->method);
  rc |= add_env_str(e, "SCRIPT_NAME", r->script_name);
  rc |= add_env_n(e, "PATH_INFO", 9, decoded, dn);
  rc |= add_env_n(e, "PATH_TRANSLATED", 15, decoded, dn);
  rc |= add_env_str(e, "X_RAW_PATH_INFO", raw_info);
  rc |= add_env_str(e, "QUERY_STRING", r->query);
  rc |= add_env_str(e, "X_MATCHED_ROUTE", r->matched_route);
  free(decoded);

  const char *ct = "";
  size_t ctn = 0;
  for (size_t i = 0; i < r->num_headers; i++)
    if (ts_str_ieq(r->headers[i].name, "content-type")) {
      ct = r->headers[i].value.p;
      ctn = r->headers[i].value.n;
      break;
    }
  rc |= add_env_n(e, "CONTENT_TYPE", 12, ct, ctn);
  /* Always set, "0" without a body, as WAGI does (its build_headers; RFC 3875
   * 4.1.2 would leave it unset, but WAGI modules are written against WAGI). */
  snprintf(num, sizeof num, "%llu", r->has_body ? (unsigned long long)r->content_length : 0ULL);
  rc |= add_env(e, "CONTENT_LENGTH", num);

  if (host_name.n) rc |= add_env_str(e, "SERVER_NAME", host_name);
  else rc |= add_env(e, "SERVER_NAME", r->server_name ? r->server_name : "localhost");
  /* RFC 3875 4.1.15: the port the request was received on, not the Host
   * header's (a client may name any port there). */
  (void)host_port;
  snprintf(num, sizeof num, "%d", r->server_port);
  rc |= add_env(e, "SERVER_PORT", num);
  rc |= add_env(e, "SERVER_PROTOCOL", r->minor ? "HTTP/1.1" : "HTTP/1.0");
  rc |= add_env(e, "SERVER_SOFTWARE", r->server_software ? r->server_software : "custom_server");
  rc |= add_env(e, "REMOTE_ADDR", r->remote_addr ? r->remote_addr : "");
  rc |= add_env(e, "REMOTE_HOST", r->remote_addr ? r->remote_addr : "");
  snprintf(num, sizeof num, "%d", r->remote_port);
  rc |= add_env(e, "REMOTE_PORT", num);
  rc |= add_env(e, "AUTH_TYPE", "");
  rc |= add_env(e, "REMOTE_USER", "");

  /* X_FULL_URL: http://<host><path>[?query] */
  {
    ts_buf *a = &e->env_arena;
    rc |= ts_buf_append(a, "X_FULL_URL", 11);
    rc |= ts_buf_puts(a, "http://");
    if (r->host.n) rc |= ts_buf_append(a, r->host.p, r->host.n);
    else rc |= ts_buf_printf(a, "%s:%d", r->server_name ? r->server_name : "localhost", r->server_port);
    rc |= ts_buf_append(a, r->path.p, r->path.n);
    if (r->query.n) {
      rc |= ts_buf_append(a, "?", 1);
      rc |= ts_buf_append(a, r->query.p, r->query.n);
    }
    rc |= ts_buf_append(a, "", 1);
    e->envc++;
  }

  /* HTTP_<NAME> per header; repeated headers joined (", ", or "; " for Cookie)
   * in arrival order. Credentials and Connection stay out, as in WAGI, and
   * the two fields CONTENT_TYPE/CONTENT_LENGTH carry (RFC 3875 4.1.18). */
  for (size_t i = 0; i < r->num_headers && !rc; i++) {
    ts_str name = r->headers[i].name;
    /* `Proxy` would become HTTP_PROXY, which CGI libraries read as their
     * outgoing proxy ("httpoxy"); a name with '_' would collide with the
     * '-' spelling of another header (nginx drops them by default too). */
    if (ts_str_ieq(name, "proxy") || memchr(name.p, '_', name.n)) continue;
    if (ts_str_ieq(name, "authorization") || ts_str_ieq(name, "connection") ||
        ts_str_ieq(name, "proxy-authorization") || ts_str_ieq(name, "content-type") ||
        ts_str_ieq(name, "content-length"))
      continue;
    int seen = 0;
    for (size_t j = 0; j < i && !seen; j++)
      if (r->headers[j].name.n == name.n && strncasecmp(r->headers[j].name.p, name.p, name.n) == 0) seen = 1;
    if (seen) continue;
    ts_buf *a = &e->env_arena;
    rc |= ts_buf_append(a, "HTTP_", 5);
    for (size_t k = 0; k < name.n; k++) {
      char c = name.p[k];
      if (c >= 'a' && c <= 'z') c = (char)(c - 32);
      else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) c = '_';
      rc |= ts_buf_append(a, &c, 1);
    }
    rc |= ts_buf_append(a, "", 1);
    int first = 1;
    const char *sep = ts_str_ieq(name, "cookie") ? "; " : ", ";
    for (size_t j = i; j < r->num_headers; j++) {
      if (r->headers[j].name.n != name.n || strncasecmp(r->headers[j].name.p, name.p, name.n)) continue;
      if (!first) rc |= ts_buf_puts(a, sep);
      rc |= ts_buf_append(a, r->headers[j].value.p, r->headers[j].value.n);
      first = 0;
    }
    rc |= ts_buf_append(a, "", 1);
    e->envc++;
  }

  for (size_t i = 0; i < r->nextra; i++) rc |= add_env(e, r->extra_names[i], r->extra_values[i]);

  /* argv: the path, then each '&'-separated query item as sent (or the
   * route's own, from its argv template). */
  for (size_t i = 0; i < r->argc_override; i++) rc |= add_arg(e, r->argv_override[i], strlen(r->argv_override[i]));
  if (!r->argc_override) rc |= add_arg(e, r->path.p, r->path.n);
  if (r->query.n && !r->argc_override) {
    size_t s = 0;
    for (size_t k = 0; k <= r->query.n; k++) {
      if (k == r->query.n || r->query.p[k] == '&') {
        rc |= add_arg(e, r->query.p + s, k - s);
        s = k + 1;
      }
    }
  }
  if (rc) return -1;
  return fixup(e);
}

void ts_wagi_env_free(ts_wagi_env *e) {
  ts_buf_free(&e->env_arena);
  ts_buf_free(&e->arg_arena);
  free(e->names);
  free(e->values);
  free(e->argv);
  memset(e, 0, sizeof *e);
}

const char *ts_wagi_getenv(const ts_wagi_env *e, const char *name) {
  for (size_t i = 0; i < e->envc; i++)
    if (strcmp(e->names[i], name) == 0) return e->values[i];
  return NULL;
}

static inline int is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int ts_cgi_header_dropped(ts_str name) {
  static const char *const owned[] = {
      /* framing: the server frames the response itself */
      "content-length",
      "transfer-encoding",
      "connection",
      "keep-alive",
      /* other hop-by-hop fields (RFC 9110 7.6.1 and its predecessors) */
      "te",
      "trailer",
      "upgrade",
      "proxy-connection",
      "proxy-authenticate",
      "proxy-authorization",
      /* set by the server */
      "date",
  };
  for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
    if (ts_str_ieq(name, owned[i])) return 1;
  /* nginx obeys X-Accel-Redirect, -Limit-Rate, -Buffering, -Expires,
   * -Charset from its upstream: a guest must never steer the proxy. */
  return name.n >= 8 && ts_str_ieq((ts_str){name.p, 8}, "x-accel-");
}

/* Whether `list` (a Connection field value) names `name`, case-insensitively. */
static int list_names(ts_str list, ts_str name) {
  size_t i = 0;
  while (i <= list.n) {
    size_t j = i;
    while (j < list.n && list.p[j] != ',') j++;
    ts_str item = ts_str_trim((ts_str){list.p + i, j - i});
    if (item.n == name.n && item.n && strncasecmp(item.p, name.p, name.n) == 0) return 1;
    i = j + 1;
  }
  return 0;
}

#define MAX_CONNECTION_FIELDS 8

int ts_cgi_parse(const char *out, size_t len, ts_cgi_response *r, ts_header *headers, size_t cap, size_t max_head) {
  size_t i = 0, head_bytes = 0, nconn = 0;
  int have_status = 0, have_location = 0, have_ctype = 0;
  ts_str conn[MAX_CONNECTION_FIELDS]; /* the guest's Connection values: the fields they name are hop-by-hop too */
  memset(r, 0, sizeof *r);
  r->headers = headers;
  r->status = 200;
  for (;;) {
    if (i >= len) { /* output ended inside the head: no body */
      r->body_off = len;
      break;
    }
    size_t eol = i;
    while (eol < len && out[eol] != '\n') eol++;
    size_t next = eol < len ? eol + 1 : eol;
    size_t end = eol;
    if (end > i && out[end - 1] == '\r') end--;
    if (end == i) { /* empty line: the body follows */
      r->body_off = next;
      break;
    }
    const char *line = out + i;
    size_t n = end - i, k = 0;
    while (k < n && is_tchar((unsigned char)line[k])) k++;
    if (k == 0 || k == n || line[k] != ':') {
      r->error = "malformed header line in guest output";
      return -1;
    }
    ts_str name = {line, k};
    ts_str value = ts_str_trim((ts_str){line + k + 1, n - k - 1});
    for (size_t v = 0; v < value.n; v++) {
      unsigned char c = (unsigned char)value.p[v];
      if ((c < 0x20 && c != '\t') || c == 0x7f) {
        r->error = "control character in guest header value";
        return -1;
      }
    }
    if (ts_str_ieq(name, "status")) {
      if (have_status) { /* which one would the guest mean? */
        r->error = "more than one Status header in guest output";
        return -1;
      }
      if (value.n < 3 || value.p[0] < '2' || value.p[0] > '5' || /* 200-599: no 1xx from a CGI */ value.p[1] < '0' ||
          value.p[1] > '9' || value.p[2] < '0' || value.p[2] > '9' ||
          (value.n > 3 && value.p[3] != ' ' && value.p[3] != '\t')) {
        r->error = "invalid Status header in guest output";
        return -1;
      }
      r->status = (value.p[0] - '0') * 100 + (value.p[1] - '0') * 10 + (value.p[2] - '0');
      r->reason = value.n > 3 ? ts_str_trim((ts_str){value.p + 4, value.n - 4}) : (ts_str){0, 0};
      have_status = 1;
    } else if (ts_cgi_header_dropped(name)) {
      /* the server's or the proxy's, not the guest's */
      if (ts_str_ieq(name, "connection")) {
        if (nconn == MAX_CONNECTION_FIELDS) {
          r->error = "too many Connection headers in guest output";
          return -1;
        }
        conn[nconn++] = value;
      }
    } else {
      if (ts_str_ieq(name, "location")) have_location = 1;
      if (ts_str_ieq(name, "content-type")) have_ctype = 1;
      if (r->num_headers >= cap) {
        r->error = "too many headers in guest output";
        return -1;
      }
      head_bytes += name.n + value.n + 4;
      if (head_bytes > max_head) {
        r->error = "guest response headers over the max-response-header limit";
        r->over_head_limit = 1;
        return -1;
      }
      headers[r->num_headers].name = name;
      headers[r->num_headers].value = value;
      r->num_headers++;
    }
    i = next;
  }
  /* RFC 9110 7.6.1: a field named in Connection is hop-by-hop as well. */
  if (nconn) {
    size_t kept = 0;
    have_location = have_ctype = 0;
    for (size_t h = 0; h < r->num_headers; h++) {
      int named = 0;
      for (size_t c = 0; c < nconn && !named; c++) named = list_names(conn[c], headers[h].name);
      if (named) continue;
      if (ts_str_ieq(headers[h].name, "location")) have_location = 1;
      if (ts_str_ieq(headers[h].name, "content-type")) have_ctype = 1;
      headers[kept++] = headers[h];
    }
    r->num_headers = kept;
  }
  if (!have_status && !have_location && !have_ctype) {
    r->error = "guest output has none of Content-Type, Location, Status";
    return -1;
  }
  if (have_location && !have_status) r->status = 302;
  return 0;
}

/* Behind the box's own nginx (a loopback peer), the client is the one nginx
 * names: X-Real-IP is its address, X-Forwarded-Port the public port it used
 * (RFC 3875 4.1.8, 4.1.15). nginx sets both and drops a client's copies. A
 * remote peer cannot forge them: its own address and our port are used. */
void ts_wagi_apply_forwarded(ts_wagi_request *wr, const ts_request *req, char addr[TS_WAGI_ADDR_MAX]) {
  const ts_header *ip = ts_http_find_header(req, "x-real-ip");
  if (ip && ip->value.n && ip->value.n < TS_WAGI_ADDR_MAX) {
    size_t k = 0;
    while (k < ip->value.n && strchr("0123456789abcdefABCDEF.:", ip->value.p[k]) && ip->value.p[k]) k++;
    if (k == ip->value.n) {
      memcpy(addr, ip->value.p, k);
      addr[k] = 0;
      wr->remote_addr = addr;
      wr->remote_port = 0; /* nginx does not pass the client's port */
    }
  }
  const ts_header *port = ts_http_find_header(req, "x-forwarded-port");
  if (port && port->value.n && port->value.n <= 5) {
    int v = 0;
    size_t k = 0;
    for (; k < port->value.n && port->value.p[k] >= '0' && port->value.p[k] <= '9'; k++)
      v = v * 10 + (port->value.p[k] - '0');
    if (k == port->value.n && v >= 1 && v <= 65535) wr->server_port = v;
  }
}
