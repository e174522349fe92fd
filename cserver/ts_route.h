/* Routing rules (pure): which prefix maps to which app. */
#ifndef TS_ROUTE_H
#define TS_ROUTE_H

#include <stddef.h>

#define TS_APP_NAME_MAX 64

typedef struct {
  char prefix[512];
  char app[TS_APP_NAME_MAX + 1];
} ts_route;

int ts_app_name_valid(const char *name, size_t n);
/* Pure: parse a routes file's text into routes (sorted longest prefix first).
 * Returns count, or -1 with err (line number and reason). */
int ts_routes_parse(const char *text, ts_route *out, int cap, char *err, size_t errlen);
/* Pure: does a route prefix match a path (segment-aware)? */
int ts_route_prefix_match(const char *prefix, const char *path, size_t len);

#endif
