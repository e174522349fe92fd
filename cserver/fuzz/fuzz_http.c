/* libFuzzer driver: request parser + framing + chunked decoder on the rest. */
#include <stdlib.h>
#include <string.h>

#include "ts_http.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  static const ts_http_limits lim = {1024, 8192, 64};
  ts_header headers[64];
  ts_request req;
  int r = ts_http_parse_request((const char *)data, size, &lim, &req, headers, 64);
  if (r <= 0) return 0;
  ts_framing f;
  if (ts_http_framing(&req, 1 << 20, &f) == 0 && f.chunked) {
    char *copy = malloc(size); /* the decoder writes in place */
    if (!copy) return 0;
    memcpy(copy, data, size);
    ts_chunked d;
    ts_chunked_init(&d, (size_t)r);
    ts_chunked_decode(&d, copy, size, 1 << 20);
    free(copy);
  }
  return 0;
}
