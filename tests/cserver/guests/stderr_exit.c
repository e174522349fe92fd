/* Writes to stderr, then exits with the status given as argv[1] (default 0). */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  int code = argc > 1 ? atoi(argv[1]) : 0;
  fprintf(stderr, "guest stderr line (exit %d)\n", code);
  printf("Content-Type: text/plain\n\nbye\n");
  fflush(stdout);
  return code;
}
