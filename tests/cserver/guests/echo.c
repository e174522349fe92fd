/* Dumps what the guest received: argv, environment, stdin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

int main(int argc, char **argv) {
  printf("Content-Type: text/plain\r\n");
  printf("X-Guest: echo\r\n\r\n");
  for (int i = 0; i < argc; i++) printf("argv[%d]=%s\n", i, argv[i]);
  for (char **e = environ; *e; e++) printf("env:%s\n", *e);
  printf("---stdin---\n");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) fwrite(buf, 1, n, stdout);
  return 0;
}
