/* Unit test of ts_loop (the event loop API) over pipes, with sanitizers. */
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "ts_loop.h"
#include "ts_util.h"

static int failures, checks;
#define CHECK(cond)                                                                                                    \
  do {                                                                                                                 \
    checks++;                                                                                                          \
    if (!(cond)) {                                                                                                     \
      failures++;                                                                                                      \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                                         \
    }                                                                                                                  \
  } while (0)

typedef struct {
  int fd;
  int reads;
  char last[16];
} reader;

static void on_readable(ts_loop *l, void *data, uint32_t events) {
  (void)l;
  reader *r = data;
  if (events & EPOLLIN) {
    ssize_t n = read(r->fd, r->last, sizeof r->last - 1);
    if (n > 0) r->last[n] = 0;
    r->reads++;
  }
}

static int timer_runs, periodic_runs, before_calls, after_calls, busy_once;
static void on_timer(ts_loop *l, void *data) {
  (void)l;
  (void)data;
  timer_runs++;
}
static void on_periodic(ts_loop *l, void *data) {
  int *id = data;
  if (++periodic_runs < 3) ts_loop_timer_arm(l, *id, 1, 0);
}
static int before(ts_loop *l, void *data) {
  (void)l;
  (void)data;
  before_calls++;
  if (busy_once) {
    busy_once = 0;
    return 1;
  }
  return 0;
}
static void after(ts_loop *l, void *data) {
  (void)l;
  (void)data;
  after_calls++;
}

int main(void) {
  ts_loop l;
  CHECK(ts_loop_init(&l) == 0);
  int p[2];
  CHECK(pipe(p) == 0);
  reader r = {p[0], 0, ""};
  ts_loop_watch w;
  CHECK(ts_loop_watch_add(&l, &w, p[0], EPOLLIN, on_readable, &r) == 0);
  ts_loop_on_sleep(&l, before, after, NULL);

  /* nothing ready: waits at most max_wait, runs both sleep steps */
  uint64_t t0 = ts_now_ms();
  CHECK(ts_loop_run_once(&l, 30) == 0);
  CHECK(ts_now_ms() - t0 >= 25 && before_calls == 1 && after_calls == 1);

  /* a ready fd runs its handler with its data */
  CHECK(write(p[1], "hello", 5) == 5);
  CHECK(ts_loop_run_once(&l, 1000) == 1 && r.reads == 1 && strcmp(r.last, "hello") == 0);

  /* the mask can be switched off and on; no event while off */
  CHECK(ts_loop_watch_set(&l, &w, 0) == 0 && w.events == 0);
  CHECK(write(p[1], "x", 1) == 1);
  CHECK(ts_loop_run_once(&l, 10) == 0 && r.reads == 1);
  CHECK(ts_loop_watch_set(&l, &w, EPOLLIN) == 0);
  CHECK(ts_loop_run_once(&l, 1000) == 1 && r.reads == 2);

  /* before-sleep reporting work: no wait at all, and no after-sleep step */
  busy_once = 1;
  int after_before = after_calls;
  t0 = ts_now_ms();
  CHECK(ts_loop_run_once(&l, 500) == 0);
  CHECK(ts_now_ms() - t0 < 100 && after_calls == after_before);

  /* a timer shortens the wait and runs once */
  int id = ts_loop_timer_new(&l, "once", on_timer, NULL);
  CHECK(id == 0 && strcmp(l.timers[id].name, "once") == 0);
  ts_loop_timer_arm(&l, id, 20, 0);
  CHECK(ts_loop_timer_armed(&l, id));
  t0 = ts_now_ms();
  while (!timer_runs && ts_now_ms() - t0 < 1000) ts_loop_run_once(&l, 1000);
  CHECK(timer_runs == 1 && ts_now_ms() - t0 < 500 && !ts_loop_timer_armed(&l, id));
  ts_loop_run_once(&l, 30);
  CHECK(timer_runs == 1);

  /* keep_earlier keeps the sooner due time; disarm cancels */
  ts_loop_timer_arm(&l, id, 10, 0);
  uint64_t due = l.timers[id].due_ms;
  ts_loop_timer_arm(&l, id, 10000, 1);
  CHECK(l.timers[id].due_ms == due);
  ts_loop_timer_disarm(&l, id);
  CHECK(!ts_loop_timer_armed(&l, id));

  /* a periodic timer re-arms itself */
  int pid = ts_loop_timer_new(&l, "periodic", on_periodic, &pid);
  ts_loop_timer_arm(&l, pid, 1, 0);
  t0 = ts_now_ms();
  while (periodic_runs < 3 && ts_now_ms() - t0 < 1000) ts_loop_run_once(&l, 100);
  CHECK(periodic_runs == 3 && !ts_loop_timer_armed(&l, pid));

  /* every slot can be used, then -1 */
  int n = l.ntimers;
  for (; n < TS_LOOP_MAX_TIMERS; n++) CHECK(ts_loop_timer_new(&l, "x", on_timer, NULL) == n);
  CHECK(ts_loop_timer_new(&l, "full", on_timer, NULL) == -1);

  /* deleting a watch: no more events */
  ts_loop_watch_del(&l, &w);
  CHECK(write(p[1], "y", 1) == 1);
  CHECK(ts_loop_run_once(&l, 10) == 0);
  close(p[0]);
  close(p[1]);
  ts_loop_free(&l);
  printf("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
