#include "ts_loop.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "ts_util.h"

#define BATCH 64

int ts_loop_init(ts_loop *l) {
  memset(l, 0, sizeof *l);
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  return l->epfd < 0 ? -1 : 0;
}

void ts_loop_free(ts_loop *l) {
  if (l->epfd >= 0) close(l->epfd);
  l->epfd = -1;
}

int ts_loop_watch_add(ts_loop *l, ts_loop_watch *w, int fd, uint32_t events, ts_loop_fd_fn fn, void *data) {
  w->fd = fd;
  w->fn = fn;
  w->data = data;
  w->events = events;
  struct epoll_event ev = {.events = events, .data.ptr = w};
  return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
}

int ts_loop_watch_set(ts_loop *l, ts_loop_watch *w, uint32_t events) {
  if (events == w->events) return 0;
  struct epoll_event ev = {.events = events, .data.ptr = w};
  if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) != 0) return -1;
  w->events = events;
  return 0;
}

void ts_loop_watch_del(ts_loop *l, ts_loop_watch *w) {
  if (w->fd >= 0) epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

int ts_loop_timer_new(ts_loop *l, const char *name, ts_loop_fn fn, void *data) {
  if (l->ntimers >= TS_LOOP_MAX_TIMERS) return -1;
  ts_loop_timer *t = &l->timers[l->ntimers];
  t->name = name;
  t->fn = fn;
  t->data = data;
  t->due_ms = 0;
  return l->ntimers++;
}

void ts_loop_timer_arm(ts_loop *l, int id, uint64_t delay_ms, int keep_earlier) {
  uint64_t due = ts_now_ms() + delay_ms;
  if (!due) due = 1;
  ts_loop_timer *t = &l->timers[id];
  if (keep_earlier && t->due_ms && t->due_ms <= due) return;
  t->due_ms = due;
}

void ts_loop_timer_disarm(ts_loop *l, int id) { l->timers[id].due_ms = 0; }

int ts_loop_timer_armed(const ts_loop *l, int id) { return l->timers[id].due_ms != 0; }

void ts_loop_on_sleep(ts_loop *l, ts_loop_sleep_fn before, ts_loop_fn after, void *data) {
  l->before_sleep = before;
  l->after_sleep = after;
  l->sleep_data = data;
}

/* Milliseconds until the first armed timer, capped at `cap`. */
static int next_wait(const ts_loop *l, int cap) {
  uint64_t now = ts_now_ms();
  int wait = cap;
  for (int i = 0; i < l->ntimers; i++) {
    uint64_t due = l->timers[i].due_ms;
    if (!due) continue;
    if (due <= now) return 0;
    if (due - now < (uint64_t)wait) wait = (int)(due - now);
  }
  return wait;
}

int ts_loop_run_once(ts_loop *l, int max_wait_ms) {
  int busy = l->before_sleep ? l->before_sleep(l, l->sleep_data) : 0;
  int wait = busy ? 0 : next_wait(l, max_wait_ms);
  struct epoll_event evs[BATCH];
  int n = epoll_wait(l->epfd, evs, BATCH, wait);
  if (n < 0 && errno != EINTR) return -1;
  if (n < 0) n = 0;
  if (!busy && l->after_sleep) l->after_sleep(l, l->sleep_data);
  for (int i = 0; i < n; i++) {
    ts_loop_watch *w = evs[i].data.ptr;
    w->fn(l, w->data, evs[i].events);
  }
  uint64_t now = ts_now_ms();
  for (int i = 0; i < l->ntimers; i++) {
    ts_loop_timer *t = &l->timers[i];
    if (t->due_ms && t->due_ms <= now) {
      t->due_ms = 0; /* one-shot: the handler re-arms a periodic timer */
      t->fn(l, t->data);
    }
  }
  return n;
}
