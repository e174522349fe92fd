/* A CGI app served as a WASI 0.2 command component: the same C as a preview 1
 * app (environment, stdin, stdout), wrapped by `wasm-tools component new`
 * with the preview 1 adapter because of component.toml. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  const char *method = getenv("REQUEST_METHOD");
  const char *path = getenv("PATH_INFO");
  const char *query = getenv("QUERY_STRING");
  const char *len_text = getenv("CONTENT_LENGTH");
  long len = len_text ? strtol(len_text, NULL, 10) : 0;
  if (path == NULL || path[0] == 0) path = "/";
  printf("Content-Type: text/plain; charset=utf-8\n");
  printf("X-Wasi: 0.2 component\n\n");
  printf("Hello from a component! %s %s\n", method ? method : "?", path);
  if (query && query[0]) printf("query: %s\n", query);
  for (int i = 1; i < argc; i++) printf("argv[%d] = %s\n", i, argv[i]);
  if (len > 0) {
    char buf[4096];
    size_t n = fread(buf, 1, len < (long)sizeof buf ? (size_t)len : sizeof buf, stdin);
    printf("body (%zu bytes): %.*s\n", n, (int)n, buf);
  }
  return 0;
}
