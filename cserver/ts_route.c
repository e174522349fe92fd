/* Routing rules, pure: app names, route prefixes, the routes file format. */
#include "ts_route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_util.h"

int ts_app_name_valid(const char *name, size_t n) {
  if (n == 0 || n > TS_APP_NAME_MAX || name[0] == '.') return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
          c == '.'))
      return 0;
  }
  if (n == 9 && memcmp(name, "_tiramisu", 9) == 0) return 0;
  return 1;
}

int ts_route_prefix_match(const char *prefix, const char *path, size_t len) {
  size_t pn = strlen(prefix);
  if (pn == 1 && prefix[0] == '/') return 1;
  if (len < pn || memcmp(prefix, path, pn) != 0) return 0;
  if (prefix[pn - 1] == '/') return 1;
  return len == pn || path[pn] == '/';
}

static int route_cmp(const void *a, const void *b) {
  size_t la = strlen(((const ts_route *)a)->prefix), lb = strlen(((const ts_route *)b)->prefix);
  return la < lb ? 1 : la > lb ? -1 : 0;
}

int ts_routes_parse(const char *text, ts_route *out, int cap, char *err, size_t errlen) {
  int n = 0, lineno = 0;
  const char *p = text;
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    char line[1200];
    lineno++;
    if (len >= sizeof line) {
      snprintf(err, errlen, "line %d: too long", lineno);
      return -1;
    }
    memcpy(line, p, len);
    line[len] = 0;
    p += len + (eol ? 1 : 0);
    char *hash = strchr(line, '#');
    if (hash) *hash = 0;
    char *save = NULL, *prefix = strtok_r(line, " \t\r", &save);
    if (!prefix) continue;
    char *app = strtok_r(NULL, " \t\r", &save), *extra = strtok_r(NULL, " \t\r", &save);
    if (!app || extra) {
      snprintf(err, errlen, "line %d: expected 'PREFIX APP'", lineno);
      return -1;
    }
    if (prefix[0] != '/' || strlen(prefix) >= sizeof out[0].prefix) {
      snprintf(err, errlen, "line %d: route prefix must start with '/': %s", lineno, prefix);
      return -1;
    }
    if (!ts_app_name_valid(app, strlen(app))) {
      snprintf(err, errlen, "line %d: invalid app name '%s'", lineno, app);
      return -1;
    }
    for (int i = 0; i < n; i++)
      if (strcmp(out[i].prefix, prefix) == 0) {
        snprintf(err, errlen, "line %d: duplicate route %s", lineno, prefix);
        return -1;
      }
    if (n >= cap) {
      snprintf(err, errlen, "line %d: more than %d routes", lineno, cap);
      return -1;
    }
    ts_strlcpy(out[n].prefix, prefix, sizeof out[n].prefix);
    ts_strlcpy(out[n].app, app, sizeof out[n].app);
    n++;
  }
  qsort(out, (size_t)n, sizeof *out, route_cmp);
  return n;
}
