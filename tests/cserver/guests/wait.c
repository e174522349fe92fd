/* Waits in WASI calls (poll_oneoff), then answers how long it waited.
 * QUERY_STRING: sleep=MS (usleep), secs=S (sleep(3)), abs=MS (absolute monotonic),
 * absreal=MS (absolute realtime), poll=MS (poll stdin + stdout, timeout MS),
 * clock=MS (poll with only a timeout: no fds). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timespec at(clockid_t id, long ms) {
  struct timespec ts;
  clock_gettime(id, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

int main(void) {
  const char *q = getenv("QUERY_STRING");
  char mode[16] = "sleep";
  long ms = 20000;
  if (q && *q) sscanf(q, "%15[a-z]=%ld", mode, &ms);
  long long t0 = now_ms(CLOCK_MONOTONIC);
  char extra[128] = "";
  if (strcmp(mode, "sleep") == 0) {
    usleep((useconds_t)ms * 1000);
  } else if (strcmp(mode, "secs") == 0) {
    sleep((unsigned)ms);
  } else if (strcmp(mode, "abs") == 0 || strcmp(mode, "absreal") == 0) {
    clockid_t id = mode[3] ? CLOCK_REALTIME : CLOCK_MONOTONIC;
    struct timespec ts = at(id, ms);
    int r = clock_nanosleep(id, TIMER_ABSTIME, &ts, NULL);
    snprintf(extra, sizeof extra, " r=%d", r);
  } else if (strcmp(mode, "poll") == 0) {
    struct pollfd p[2] = {{0, POLLIN, 0}, {1, POLLOUT, 0}};
    int r = poll(p, 2, (int)ms);
    snprintf(extra, sizeof extra, " r=%d in=%d out=%d", r, (p[0].revents & POLLIN) != 0,
             (p[1].revents & POLLOUT) != 0);
  } else if (strcmp(mode, "clock") == 0) {
    int r = poll(NULL, 0, (int)ms);
    snprintf(extra, sizeof extra, " r=%d", r);
  }
  long long took = now_ms(CLOCK_MONOTONIC) - t0;
  printf("Content-Type: text/plain\n\nwaited %lld ms%s\n", took, extra);
  return 0;
}
