/* libFuzzer driver: request parser + framing + chunked decoder on the rest;
 * the same bytes fed in two pieces (resuming) must give the same answer, except
 * that a syntax error in an unfinished head may wait for the head's end. */
#include <stdlib.h>
#include <string.h>

#include "ts_http.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  static const ts_http_limits lim = {1024, 8192, 64};
  ts_header headers[64];
  ts_request req;
  int r = ts_http_parse_request((const char *)data, size, &lim, &req, headers, 64);
  int status = req.status;
  if (size > 0) {
    size_t cut = data[0] % size + 1; /* first piece: 1..size bytes */
    int rr = ts_http_parse_request_resume((const char *)data, cut, 0, &lim, &req, headers, 64);
    if (rr == TS_HTTP_INCOMPLETE && cut < size)
      rr = ts_http_parse_request_resume((const char *)data, size, cut, &lim, &req, headers, 64);
    int later = r == TS_HTTP_ERROR && rr == TS_HTTP_INCOMPLETE;
    if (!later && (rr != r || (r == TS_HTTP_ERROR && req.status != status))) abort();
    if (r > 0) ts_http_parse_request((const char *)data, size, &lim, &req, headers, 64); /* views for below */
  }
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
