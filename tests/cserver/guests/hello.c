/* The trivial guest: a fixed response. */
#include <stdio.h>

int main(void) {
  fputs("Content-Type: text/plain\n\nhello from C\n", stdout);
  return 0;
}
