/* The libc guest (for information): the same response, through wasi-libc's
 * start-up and stdio. */
#include <stdio.h>

int main(void) {
  fputs("Content-Type: text/plain\n\nhello from wasm\n", stdout);
  return 0;
}
