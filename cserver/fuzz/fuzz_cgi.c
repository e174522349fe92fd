/* libFuzzer driver: the CGI output parser, and the WAGI env builder fed with
 * the parsed headers (arbitrary bytes as names and values). */
#include <string.h>

#include "ts_wagi.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  ts_header headers[64];
  ts_cgi_response r;
  if (ts_cgi_parse((const char *)data, size, &r, headers, 64, 16384) == 0) {
    static ts_wagi_env env;
    ts_wagi_request w = {0};
    const char *s = (const char *)data + r.body_off;
    size_t n = size - r.body_off;
    w.method = (ts_str){"GET", 3};
    w.path = (ts_str){s, n};
    w.query = (ts_str){s, n / 2};
    w.script_name = (ts_str){s, n / 3};
    w.matched_route = w.script_name;
    w.headers = r.headers;
    w.num_headers = r.num_headers;
    w.host = r.num_headers ? r.headers[0].value : (ts_str){"", 0};
    ts_wagi_build(&w, &env);
  }
  return 0;
}
