/* WAGI routes and app maps, pure (see ts_appmap.h for the contract). */
#include "ts_appmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_util.h"

static int route_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
  return strchr("!$&'()*+,;=:@._~%/-", c) != NULL && c != 0;
}

static int seg_eq(const char *s, size_t n, const char *lit) { return n == strlen(lit) && memcmp(s, lit, n) == 0; }

static int lower_prefix(const char *s, size_t n, const char *lit) {
  size_t k = strlen(lit);
  if (n < k) return 0;
  for (size_t i = 0; i < k; i++) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (c != lit[i]) return 0;
  }
  return n == k || s[k] == '/';
}

int ts_wroute_check(const char *text, size_t n, int reserved, ts_wpattern *out, char *err, size_t errlen) {
  if (n == 0 || text[0] != '/') {
    snprintf(err, errlen, "'%.*s' must start with '/'", (int)(n > 200 ? 200 : n), text);
    return -1;
  }
  for (size_t i = 0; i < n; i++)
    if (!route_char(text[i])) {
      snprintf(err, errlen, "'%.*s' has a character a route cannot have", (int)(n > 200 ? 200 : n), text);
      return -1;
    }
  size_t bn = n;
  int wild = 0;
  if (n >= 4 && memcmp(text + n - 4, "/...", 4) == 0) {
    bn = n - 4;
    wild = 1;
  }
  if (bn >= TS_WROUTE_MAX) {
    snprintf(err, errlen, "route longer than %d bytes", TS_WROUTE_MAX - 1);
    return -1;
  }
  /* segments of the base: none may be ".", ".." or "..."; no "//" */
  for (size_t i = 0; i < bn;) {
    size_t j = i + 1;
    while (j < bn && text[j] != '/') j++;
    const char *seg = text + i + 1;
    size_t sn = j - i - 1;
    if (seg_eq(seg, sn, ".") || seg_eq(seg, sn, "..") || seg_eq(seg, sn, "...")) {
      snprintf(err, errlen, "'%.*s': '%.*s' is only allowed as the final '/...' of a wildcard route",
               (int)(n > 200 ? 200 : n), text, (int)sn, seg);
      return -1;
    }
    if (sn == 0 && j < bn) {
      snprintf(err, errlen, "'%.*s' has an empty path segment ('//')", (int)(n > 200 ? 200 : n), text);
      return -1;
    }
    i = j;
  }
  if (reserved && lower_prefix(text, bn, "/_tiramisu")) {
    snprintf(err, errlen, "'%.*s' is under /_tiramisu, which the server keeps for itself", (int)(n > 200 ? 200 : n),
             text);
    return -1;
  }
  memcpy(out->base, text, bn);
  out->base[bn] = 0;
  out->wildcard = wild;
  return 0;
}

int ts_wentry_name_valid(const char *s, size_t n) {
  if (n == 0 || n > 128) return 0;
  if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_')) return 0;
  for (size_t i = 1; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
          c == '$' || c == '-'))
      return 0;
  }
  return 1;
}

int ts_wpattern_match(const ts_wpattern *p, const char *path, size_t n) {
  size_t bn = strlen(p->base);
  if (!p->wildcard) return n == bn && memcmp(path, p->base, n) == 0;
  if (n < bn || memcmp(path, p->base, bn) != 0) return 0;
  return n == bn || path[bn] == '/';
}

int ts_wpattern_append(const ts_wpattern *parent, const ts_wpattern *sub, ts_wpattern *out) {
  size_t ln = strlen(parent->base);
  if (ln && parent->base[ln - 1] == '/') ln--;
  const char *r = sub->base;
  if (*r == '/') r++;
  size_t rn = strlen(r);
  if (ln + 1 + rn >= sizeof out->base) return -1;
  char tmp[TS_WROUTE_MAX];
  memcpy(tmp, parent->base, ln);
  tmp[ln] = '/';
  memcpy(tmp + ln + 1, r, rn + 1);
  memcpy(out->base, tmp, ln + rn + 2);
  out->wildcard = sub->wildcard;
  return 0;
}

void ts_wpattern_text(const ts_wpattern *p, char *buf, size_t n) {
  snprintf(buf, n, "%s%s", p->base, p->wildcard ? "/..." : "");
}

void ts_wpattern_split(const ts_wpattern *p, const char *path, size_t n, char *script, size_t script_n,
                       size_t *info_off) {
  size_t bn = strlen(p->base);
  snprintf(script, script_n, "%s%s", (p->wildcard && p->base[0] != '/') ? "/" : "", p->base);
  *info_off = (n >= bn && memcmp(path, p->base, bn) == 0) ? bn : n;
}

int ts_wroutes_add_dynamic(const ts_wpattern *parent, int owner, const char *text, size_t n, ts_wentry *table,
                           int *count, int cap, char *err, size_t errlen) {
  int start = *count, lineno = 0, any = 0;
  size_t pos = 0;
  while (pos < n) {
    const char *line = text + pos;
    const char *nl = memchr(line, '\n', n - pos);
    size_t len = nl ? (size_t)(nl - line) : n - pos;
    pos += len + (nl ? 1 : 0);
    lineno++;
    const char *f[3];
    size_t fl[3];
    int nf = 0;
    for (size_t i = 0; i < len;) {
      while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\v' || line[i] == '\f'))
        i++;
      if (i >= len) break;
      size_t s = i;
      while (i < len && !(line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\v' || line[i] == '\f'))
        i++;
      if (nf < 3) {
        f[nf] = line + s;
        fl[nf] = i - s;
      }
      nf++;
    }
    if (nf == 0) continue;
    if (nf != 2) {
      snprintf(err, errlen, "_routes line %d: expected 'SUBROUTE ENTRYPOINT', got '%.*s'", lineno,
               (int)(len > 80 ? 80 : len), line);
      *count = start;
      return -1;
    }
    char route[TS_WROUTE_MAX + 1], why[300];
    size_t rn = 0;
    if (f[0][0] != '/') route[rn++] = '/';
    if (rn + fl[0] >= sizeof route) {
      snprintf(err, errlen, "_routes line %d: route too long", lineno);
      *count = start;
      return -1;
    }
    memcpy(route + rn, f[0], fl[0]);
    rn += fl[0];
    route[rn] = 0;
    ts_wpattern sub;
    if (ts_wroute_check(route, rn, 0, &sub, why, sizeof why) != 0) {
      snprintf(err, errlen, "_routes line %d: %s", lineno, why);
      *count = start;
      return -1;
    }
    if (!ts_wentry_name_valid(f[1], fl[1])) {
      snprintf(err, errlen, "_routes line %d: entrypoint '%.*s' is not an export name", lineno,
               (int)(fl[1] > 80 ? 80 : fl[1]), f[1]);
      *count = start;
      return -1;
    }
    if (*count >= cap) {
      snprintf(err, errlen, "_routes line %d: more than %d routes", lineno, cap);
      *count = start;
      return -1;
    }
    ts_wentry *e = &table[*count];
    if (ts_wpattern_append(parent, &sub, &e->pat) != 0) {
      snprintf(err, errlen, "_routes line %d: route too long", lineno);
      *count = start;
      return -1;
    }
    memcpy(e->entrypoint, f[1], fl[1]);
    e->entrypoint[fl[1]] = 0;
    e->owner = owner;
    (*count)++;
    any = 1;
  }
  if (!any) {
    snprintf(err, errlen, "_routes printed nothing");
    return -1;
  }
  /* WAGI's order: the last listed first */
  for (int i = start, j = *count - 1; i < j; i++, j--) {
    ts_wentry t = table[i];
    table[i] = table[j];
    table[j] = t;
  }
  return 0;
}

int ts_wroutes_check(const char *text, size_t n, char *err, size_t errlen) {
  int cap = TS_APPMAP_MAX_ROUTES * 4, count = 0;
  ts_wentry *t = calloc((size_t)cap, sizeof *t);
  if (!t) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  ts_wpattern root = {.base = "", .wildcard = 0};
  int rc = ts_wroutes_add_dynamic(&root, 0, text, n, t, &count, cap, err, errlen);
  free(t);
  return rc;
}

int ts_wtable_match(const ts_wentry *table, int count, const char *path, size_t n) {
  int best = -1;
  size_t best_len = 0;
  int best_exact = 0;
  for (int i = 0; i < count; i++) {
    const ts_wpattern *p = &table[i].pat;
    if (!ts_wpattern_match(p, path, n)) continue;
    int exact = !p->wildcard;
    size_t len = strlen(p->base);
    if (best < 0 || exact > best_exact || (exact == best_exact && len > best_len)) {
      best = i;
      best_exact = exact;
      best_len = len;
    }
  }
  return best;
}

/* Append a word to buf; -1 when out of room. */
static int put_word(char *buf, size_t buf_n, size_t *used, const char **words, int max_words, int *nw, const char *s,
                    size_t n) {
  if (*nw >= max_words || *used + n + 1 > buf_n) return -1;
  memcpy(buf + *used, s, n);
  buf[*used + n] = 0;
  words[(*nw)++] = buf + *used;
  *used += n + 1;
  return 0;
}

static int argv_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

/* dst = src with every `lit` replaced by `with` (tr_amp: '&' in `with` as ' '). */
static int replace_all(ts_buf *dst, const char *src, size_t n, const char *lit, const char *with, size_t with_n,
                       int tr_amp) {
  size_t ln = strlen(lit);
  int rc = 0;
  for (size_t i = 0; i < n && !rc;) {
    if (n - i >= ln && memcmp(src + i, lit, ln) == 0) {
      for (size_t k = 0; k < with_n && !rc; k++) {
        char c = (tr_amp && with[k] == '&') ? ' ' : with[k];
        rc = ts_buf_append(dst, &c, 1);
      }
      i += ln;
    } else {
      rc = ts_buf_append(dst, src + i, 1);
      i++;
    }
  }
  return rc;
}

int ts_wargv_expand(const char *tmpl, const char *script, const char *path, size_t path_n, const char *query,
                    size_t query_n, char *buf, size_t buf_n, const char **words, int max_words) {
  size_t used = 0;
  int nw = 0;
  (void)script; /* WAGI's ${SCRIPT_NAME} is the request path, not SCRIPT_NAME */
  if (!tmpl || !*tmpl) {
    /* WAGI's default: the path, then query.split('&'), empty items kept */
    if (put_word(buf, buf_n, &used, words, max_words, &nw, path, path_n) != 0) return -1;
    for (size_t i = 0, s = 0; query_n && i <= query_n; i++)
      if (i == query_n || query[i] == '&') {
        if (put_word(buf, buf_n, &used, words, max_words, &nw, query + s, i - s) != 0) return -1;
        s = i + 1;
      }
    return nw;
  }
  /* WAGI's template: ${SCRIPT_NAME} -> the path, then ${ARGS} -> the query
   * with '&' as ' ', then split on whitespace (empty items vanish). */
  ts_buf a = {0}, b = {0};
  int rc = replace_all(&a, tmpl, strlen(tmpl), "${SCRIPT_NAME}", path, path_n, 0);
  if (!rc) rc = replace_all(&b, a.p ? a.p : "", a.n, "${ARGS}", query, query_n, 1);
  for (size_t i = 0; !rc && i < b.n;) {
    while (i < b.n && argv_space(b.p[i])) i++;
    if (i >= b.n) break;
    size_t s = i;
    while (i < b.n && !argv_space(b.p[i])) i++;
    if (put_word(buf, buf_n, &used, words, max_words, &nw, b.p + s, i - s) != 0) rc = -1;
  }
  ts_buf_free(&a);
  ts_buf_free(&b);
  return rc ? -1 : nw;
}

/* ---- app maps ---------------------------------------------------------- */

static int split_tabs(char *line, char **f, int cap) {
  int n = 0;
  char *p = line;
  while (n < cap) {
    f[n++] = p;
    char *t = strchr(p, '\t');
    if (!t) break;
    *t = 0;
    p = t + 1;
  }
  return n;
}

int ts_appmap_parse(const char *text, size_t n, ts_appmap *m, char *err, size_t errlen) {
  memset(m, 0, sizeof *m);
  size_t pos = 0;
  int lineno = 0, header = 0;
  char line[2048];
  while (pos < n) {
    const char *s = text + pos;
    const char *nl = memchr(s, '\n', n - pos);
    size_t len = nl ? (size_t)(nl - s) : n - pos;
    pos += len + (nl ? 1 : 0);
    lineno++;
    if (len && s[len - 1] == '\r') len--;
    if (len >= sizeof line) {
      snprintf(err, errlen, "line %d: too long", lineno);
      return -1;
    }
    if (memchr(s, 0, len)) {
      snprintf(err, errlen, "line %d: NUL byte", lineno);
      return -1;
    }
    memcpy(line, s, len);
    line[len] = 0;
    if (len == 0 || line[0] == '#') continue;
    if (!header) {
      if (strcmp(line, "tiramisu-appmap 1") != 0) {
        snprintf(err, errlen, "line %d: expected 'tiramisu-appmap 1'", lineno);
        return -1;
      }
      header = 1;
      continue;
    }
    char *f[6];
    int nf = split_tabs(line, f, 6);
    ts_appmap_route *cur = m->nroutes ? &m->routes[m->nroutes - 1] : NULL;
    if (strcmp(f[0], "route") == 0 && (nf == 4 || nf == 5)) {
      if (m->nroutes >= TS_APPMAP_MAX_ROUTES) {
        snprintf(err, errlen, "line %d: more than %d routes", lineno, TS_APPMAP_MAX_ROUTES);
        return -1;
      }
      ts_appmap_route *r = &m->routes[m->nroutes];
      char why[300];
      if (ts_wroute_check(f[1], strlen(f[1]), 1, &r->pat, why, sizeof why) != 0) {
        snprintf(err, errlen, "line %d: %s", lineno, why);
        return -1;
      }
      size_t mn = strlen(f[2]);
      int mod_ok = mn > 0 && mn < sizeof r->module && f[2][0] != '.';
      for (size_t i = 0; mod_ok && i < mn; i++) {
        char c = f[2][i];
        mod_ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                 c == '.';
      }
      if (!mod_ok) {
        snprintf(err, errlen, "line %d: invalid module name '%.100s'", lineno, f[2]);
        return -1;
      }
      if (!ts_wentry_name_valid(f[3], strlen(f[3]))) {
        snprintf(err, errlen, "line %d: invalid entrypoint '%.100s'", lineno, f[3]);
        return -1;
      }
      for (int i = 0; i < m->nroutes; i++)
        if (m->routes[i].pat.wildcard == r->pat.wildcard && strcmp(m->routes[i].pat.base, r->pat.base) == 0) {
          snprintf(err, errlen, "line %d: duplicate route %s", lineno, f[1]);
          return -1;
        }
      ts_strlcpy(r->module, f[2], sizeof r->module);
      ts_strlcpy(r->entrypoint, f[3], sizeof r->entrypoint);
      if (nf == 5 && strlen(f[4]) >= sizeof r->argv) {
        snprintf(err, errlen, "line %d: argv template too long", lineno);
        return -1;
      }
      ts_strlcpy(r->argv, nf == 5 ? f[4] : "", sizeof r->argv);
      r->env_from = m->nenv;
      r->dir_from = m->ndirs;
      m->nroutes++;
    } else if (strcmp(f[0], "env") == 0 && nf == 3) {
      size_t kn = strlen(f[1]);
      int ok = kn > 0 && kn < sizeof m->env_name[0] && !(f[1][0] >= '0' && f[1][0] <= '9');
      for (size_t i = 0; ok && i < kn; i++)
        ok = (f[1][i] >= 'A' && f[1][i] <= 'Z') || (f[1][i] >= 'a' && f[1][i] <= 'z') ||
             (f[1][i] >= '0' && f[1][i] <= '9') || f[1][i] == '_';
      if (!ok || strlen(f[2]) >= sizeof m->env_value[0] || m->nenv >= TS_APPMAP_MAX_ENV) {
        snprintf(err, errlen, "line %d: invalid env entry", lineno);
        return -1;
      }
      ts_strlcpy(m->env_name[m->nenv], f[1], sizeof m->env_name[0]);
      ts_strlcpy(m->env_value[m->nenv], f[2], sizeof m->env_value[0]);
      m->nenv++;
      if (cur) cur->env_count++;
      else m->app_env++;
    } else if (strcmp(f[0], "dir") == 0 && nf == 4) {
      int rw = strcmp(f[3], "rw") == 0;
      if ((!rw && strcmp(f[3], "ro") != 0) || f[1][0] != '/' || !f[2][0] || strlen(f[1]) >= 256 ||
          strlen(f[2]) >= 512 || m->ndirs >= TS_APPMAP_MAX_DIRS) {
        snprintf(err, errlen, "line %d: invalid dir entry (dir GUEST HOST ro|rw)", lineno);
        return -1;
      }
      ts_appmap_dir *d = &m->dirs[m->ndirs++];
      ts_strlcpy(d->guest, f[1], sizeof d->guest);
      ts_strlcpy(d->host, f[2], sizeof d->host);
      d->writable = rw;
      if (cur) cur->dir_count++;
      else m->app_dirs++;
    } else if (strcmp(f[0], "envfile") == 0 && nf == 2 && f[1][0] && strlen(f[1]) < sizeof m->env_file) {
      ts_strlcpy(m->env_file, f[1], sizeof m->env_file);
    } else if (strcmp(f[0], "limit") == 0 && nf == 3) {
      char *end;
      long v = strtol(f[2], &end, 10);
      long *dst = strcmp(f[1], "timeout-ms") == 0  ? &m->timeout_ms
                  : strcmp(f[1], "memory-mb") == 0 ? &m->memory_mb
                  : strcmp(f[1], "max-body") == 0  ? &m->max_body
                                                   : NULL;
      if (!dst || *end || end == f[2] || v <= 0) {
        snprintf(err, errlen, "line %d: invalid limit", lineno);
        return -1;
      }
      *dst = v;
    } else {
      snprintf(err, errlen, "line %d: unknown entry '%.40s'", lineno, f[0]);
      return -1;
    }
  }
  if (!header) {
    snprintf(err, errlen, "empty app map");
    return -1;
  }
  if (m->nroutes == 0) {
    snprintf(err, errlen, "no routes");
    return -1;
  }
  return 0;
}

int ts_envfile_parse(const char *text, size_t n, void (*fn)(void *ctx, const char *name, const char *value), void *ctx,
                     char *err, size_t errlen) {
  size_t pos = 0;
  int lineno = 0;
  char line[4096];
  while (pos < n) {
    const char *s = text + pos;
    const char *nl = memchr(s, '\n', n - pos);
    size_t len = nl ? (size_t)(nl - s) : n - pos;
    pos += len + (nl ? 1 : 0);
    lineno++;
    if (len && s[len - 1] == '\r') len--;
    if (len >= sizeof line || memchr(s, 0, len)) {
      snprintf(err, errlen, "env file line %d: too long or binary", lineno);
      return -1;
    }
    memcpy(line, s, len);
    line[len] = 0;
    char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p || *p == '#') continue;
    if (strncmp(p, "export ", 7) == 0) p += 7;
    char *eq = strchr(p, '=');
    if (!eq || eq == p) {
      snprintf(err, errlen, "env file line %d: expected NAME=VALUE", lineno);
      return -1;
    }
    *eq = 0;
    char *name = p, *val = eq + 1;
    for (char *c = name; *c; c++)
      if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) {
        snprintf(err, errlen, "env file line %d: invalid variable name", lineno);
        return -1;
      }
    size_t vn = strlen(val);
    if (vn >= 2 && (val[0] == '"' || val[0] == '\'') && val[vn - 1] == val[0]) {
      val[vn - 1] = 0;
      val++;
    }
    fn(ctx, name, val);
  }
  return 0;
}
