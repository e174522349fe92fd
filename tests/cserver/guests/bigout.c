/* Writes argv[1] KiB of body (default 1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  long kib = argc > 1 ? atol(argv[1]) : 1;
  char line[1024];
  memset(line, 'x', sizeof line - 1);
  line[sizeof line - 1] = '\n';
  printf("Content-Type: text/plain\n\n");
  for (long i = 0; i < kib; i++) fwrite(line, 1, sizeof line, stdout);
  return 0;
}
