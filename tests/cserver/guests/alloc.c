/* Allocates without bound (touching every page, keeping every block) until malloc fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile keep; /* a chain of every block: the compiler may not elide them */

int main(void) {
  for (;;) {
    void **p = malloc(1 << 20);
    if (!p) abort();
    memset(p, 1, 1 << 20);
    *p = keep;
    keep = p;
  }
}
