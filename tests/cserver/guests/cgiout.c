/* Prints a CGI response chosen by the query string, to test what the server
 * lets through: ?hop, ?xaccel, ?big=N (one header of N bytes), ?status=N,
 * ?exit=N (exit with N after a valid response), ?conn (a field named in Connection), ?err=N (N KiB to stderr). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  const char *q = getenv("QUERY_STRING");
  if (!q) q = "";
  if (strcmp(q, "hop") == 0) {
    printf("Content-Type: text/plain\nUpgrade: h2c\nTE: trailers\nProxy-Connection: keep-alive\n"
           "Keep-Alive: timeout=5\nTrailer: X-T\nX-Kept: yes\n\nhop\n");
  } else if (strcmp(q, "xaccel") == 0) {
    printf("Content-Type: text/plain\nX-Accel-Redirect: /hello/\nX-Accel-Limit-Rate: 1\n"
           "X-Accel-Buffering: no\nX-Kept: yes\n\nxaccel\n");
  } else if (strncmp(q, "err=", 4) == 0) { /* N KiB to stderr, 1 KiB per write */
    static char line[1024];
    memset(line, 'e', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    for (long i = atol(q + 4); i > 0; i--) fwrite(line, 1, sizeof line, stderr);
    printf("Content-Type: text/plain\n\nerr\n");
  } else if (strcmp(q, "conn") == 0) {
    printf("Content-Type: text/plain\nConnection: X-Private\nX-Private: secret\nX-Kept: yes\n\nconn\n");
  } else if (strncmp(q, "big=", 4) == 0) {
    size_t n = (size_t)atol(q + 4);
    char *v = malloc(n + 1);
    memset(v, 'a', n);
    v[n] = 0;
    printf("Content-Type: text/plain\nX-Big: %s\n\nbig\n", v);
  } else if (strncmp(q, "status=", 7) == 0) {
    printf("Status: %s\nContent-Type: text/plain\n\nstatus\n", q + 7);
  } else if (strncmp(q, "exit=", 5) == 0) {
    printf("Content-Type: text/plain\n\nbye\n");
    fflush(stdout);
    exit(atoi(q + 5));
  } else {
    printf("Content-Type: text/plain\n\nplain\n");
  }
  return 0;
}
