/* A small event loop over epoll, one per I/O thread.
 *
 * In the spirit of redis ae: a handler and its data per file descriptor, a
 * step before each sleep and one after it, and named timers; nothing about
 * HTTP. Level-triggered. A handler may close any fd, but memory that a later
 * event of the same batch may point to must not be freed inside a handler:
 * free it in the before-sleep step (the server queues closed connections).
 */
#ifndef TS_LOOP_H
#define TS_LOOP_H

#include <stdint.h>

struct ts_loop;

/* What happens on an fd: `events` is the epoll mask that fired. */
typedef void (*ts_loop_fd_fn)(struct ts_loop *l, void *data, uint32_t events);
/* A timer or a sleep step. */
typedef void (*ts_loop_fn)(struct ts_loop *l, void *data);
/* Before sleeping: return nonzero when there is work already (do not sleep). */
typedef int (*ts_loop_sleep_fn)(struct ts_loop *l, void *data);

/* One watched fd; embed it in the object the fd belongs to. */
typedef struct ts_loop_watch {
  int fd;
  uint32_t events; /* the mask currently registered */
  ts_loop_fd_fn fn;
  void *data;
} ts_loop_watch;

#define TS_LOOP_MAX_TIMERS 8

typedef struct ts_loop_timer {
  const char *name; /* for logs and debugging */
  ts_loop_fn fn;
  void *data;
  uint64_t due_ms; /* 0 = not armed */
} ts_loop_timer;

typedef struct ts_loop {
  int epfd;
  ts_loop_timer timers[TS_LOOP_MAX_TIMERS];
  int ntimers;
  ts_loop_sleep_fn before_sleep;
  ts_loop_fn after_sleep; /* after every wait that before_sleep allowed */
  void *sleep_data;
} ts_loop;

int ts_loop_init(ts_loop *l);  /* 0 or -1 (errno) */
void ts_loop_free(ts_loop *l); /* closes the epoll fd */

/* Watch w->fd for `events` (EPOLLIN, EPOLLOUT, EPOLLEXCLUSIVE, ...). 0 or -1 (errno). */
int ts_loop_watch_add(ts_loop *l, ts_loop_watch *w, int fd, uint32_t events, ts_loop_fd_fn fn, void *data);
/* Change the mask; no system call when it is already registered. */
int ts_loop_watch_set(ts_loop *l, ts_loop_watch *w, uint32_t events);
/* Stop watching (closing the fd does too). */
void ts_loop_watch_del(ts_loop *l, ts_loop_watch *w);

/* A named one-shot timer; returns its id (or -1 when all slots are used).
 * Arm it with ts_loop_timer_arm; a periodic timer re-arms itself. */
int ts_loop_timer_new(ts_loop *l, const char *name, ts_loop_fn fn, void *data);
/* Run the timer in `delay_ms` (keeps an earlier due time when `keep_earlier`). */
void ts_loop_timer_arm(ts_loop *l, int id, uint64_t delay_ms, int keep_earlier);
void ts_loop_timer_disarm(ts_loop *l, int id);
int ts_loop_timer_armed(const ts_loop *l, int id);

void ts_loop_on_sleep(ts_loop *l, ts_loop_sleep_fn before, ts_loop_fn after, void *data);

/* One iteration: the before-sleep step, a wait of at most `max_wait_ms` (less
 * when a timer is due sooner; none when before-sleep found work), the
 * after-sleep step, the handlers of every fd that fired, then every due timer.
 * Returns the number of fd events handled, -1 on an epoll error. */
int ts_loop_run_once(ts_loop *l, int max_wait_ms);

#endif
