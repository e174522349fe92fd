/* A guest sending one response header of argv[1] bytes (default 12288). */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 12288;
  printf("Content-Type: text/plain\nX-Big: ");
  for (long i = 0; i < n; i++) putchar('a' + i % 26);
  printf("\n\nbig header sent\n");
  return 0;
}
