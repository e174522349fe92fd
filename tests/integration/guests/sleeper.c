/* Sleeps ?secs=N seconds in a WASI call (default: not at all), then answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
  const char *q = getenv("QUERY_STRING");
  unsigned secs = 0;
  if (q && strncmp(q, "secs=", 5) == 0) secs = (unsigned)atoi(q + 5);
  sleep(secs);
  printf("Content-Type: text/plain\n\nslept %u s\n", secs);
  return 0;
}
