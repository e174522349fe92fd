/* A guest that tries to steer the proxy with X-Accel-* response fields. */
#include <stdio.h>

int main(void) {
  printf("Content-Type: text/plain\n");
  printf("X-Accel-Redirect: /echo/\n");
  printf("X-Accel-Limit-Rate: 1\n");
  printf("X-Accel-Buffering: no\n");
  printf("X-Accel-Expires: 60\n");
  printf("X-Accel-Charset: koi8-r\n");
  printf("\nxaccel body\n");
  return 0;
}
