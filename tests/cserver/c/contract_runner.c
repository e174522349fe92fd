/* Runs one case of the CGI contract files (cserver/contract/*.json) through
 * the server's own functions, for tests/cserver/test_contract.py.
 *
 *   contract_runner output MAX_HEAD   < guest stdout bytes
 *       -> "status N" / "header NAME<TAB>VALUE"... / "body_off N", or "error MESSAGE"
 *   contract_runner env               < "key<TAB>value" lines, "header<TAB>NAME<TAB>VALUE"
 *       -> "NAME=VALUE" per variable, then "argv<TAB>ARG" per argument
 *   contract_runner names             < one app name per line (hex-encoded)
 *       -> "1" or "0" per line: does the server route it (ts_app_name_valid)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_route.h"
#include "ts_wagi.h"

static char *read_all(size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *p = malloc(cap);
  size_t r;
  while (p && (r = fread(p + n, 1, cap - n, stdin)) > 0) {
    n += r;
    if (n == cap) p = realloc(p, cap *= 2);
  }
  *len = n;
  return p;
}

static int run_output(size_t max_head) {
  size_t len;
  char *out = read_all(&len);
  ts_header h[256];
  ts_cgi_response r;
  if (ts_cgi_parse(out, len, &r, h, 256, max_head)) {
    printf("error %s\n", r.error);
    return 0;
  }
  printf("status %d\n", r.status);
  for (size_t i = 0; i < r.num_headers; i++)
    printf("header %.*s\t%.*s\n", (int)h[i].name.n, h[i].name.p, (int)h[i].value.n, h[i].value.p);
  printf("body_off %zu\n", r.body_off);
  return 0;
}

static ts_str field(char *v) { return (ts_str){v, strlen(v)}; }

static int run_env(void) {
  size_t len;
  char *in = read_all(&len);
  ts_wagi_request w = {0};
  ts_header h[64];
  size_t nh = 0;
  w.minor = 1;
  w.host = (ts_str){NULL, 0};
  for (char *line = strtok(in, "\n"); line; line = strtok(NULL, "\n")) {
    char *tab = strchr(line, '\t');
    if (!tab) continue;
    *tab = 0;
    char *v = tab + 1;
    if (!strcmp(line, "header") && nh < 64) {
      char *t2 = strchr(v, '\t');
      if (!t2) continue;
      *t2 = 0;
      h[nh].name = field(v);
      h[nh].value = field(t2 + 1);
      nh++;
    } else if (!strcmp(line, "method")) w.method = field(v);
    else if (!strcmp(line, "path")) w.path = field(v);
    else if (!strcmp(line, "query")) w.query = field(v);
    else if (!strcmp(line, "script_name")) w.script_name = field(v);
    else if (!strcmp(line, "matched_route")) w.matched_route = field(v);
    else if (!strcmp(line, "host")) w.host = field(v);
    else if (!strcmp(line, "server_name")) w.server_name = v;
    else if (!strcmp(line, "server_port")) w.server_port = atoi(v);
    else if (!strcmp(line, "remote_addr")) w.remote_addr = v;
    else if (!strcmp(line, "has_body")) w.has_body = atoi(v);
    else if (!strcmp(line, "content_length")) w.content_length = strtoull(v, NULL, 10);
    else if (!strcmp(line, "minor")) w.minor = atoi(v);
  }
  w.headers = h;
  w.num_headers = nh;
  ts_wagi_env e = {0};
  if (ts_wagi_build(&w, &e)) {
    printf("error out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < e.envc; i++) printf("%s=%s\n", e.names[i], e.values[i]);
  for (size_t i = 0; i < e.argc; i++) printf("argv\t%s\n", e.argv[i]);
  ts_wagi_env_free(&e);
  free(in);
  return 0;
}

static int run_names(void) {
  char line[1024], name[512];
  while (fgets(line, sizeof line, stdin)) {
    size_t n = 0;
    for (char *p = line; p[0] && p[1] && p[0] != '\n' && n < sizeof name; p += 2) {
      unsigned v;
      if (sscanf(p, "%2x", &v) != 1) break;
      name[n++] = (char)v;
    }
    printf("%d\n", ts_app_name_valid(name, n) ? 1 : 0);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && !strcmp(argv[1], "output")) return run_output((size_t)strtoull(argv[2], NULL, 10));
  if (argc >= 2 && !strcmp(argv[1], "env")) return run_env();
  if (argc >= 2 && !strcmp(argv[1], "names")) return run_names();
  fprintf(stderr, "usage: contract_runner output MAX_HEAD | env | names\n");
  return 2;
}
