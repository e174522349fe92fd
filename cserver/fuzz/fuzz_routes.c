/* libFuzzer driver: the routes file parser, then longest-prefix matching of
 * the input's first line against what it parsed. */
#include <stdlib.h>
#include <string.h>

#include "ts_route.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0; /* the parser takes a C string, as read from the file */
  static ts_route routes[64];
  char err[256];
  int n = ts_routes_parse(text, routes, 64, err, sizeof err);
  size_t plen = strcspn(text, "\n");
  for (int i = 0; i < n; i++) ts_route_prefix_match(routes[i].prefix, text, plen);
  free(text);
  return 0;
}
