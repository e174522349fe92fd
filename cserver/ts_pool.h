/* The guest-thread pool: a fixed set of threads running jobs, with a
 * concurrency limit and a bounded wait queue per app, shared fairly.
 *
 * Jobs queue per app. An app is "ready" when it has queued jobs and fewer
 * than `app_concurrency` of its jobs running; ready apps form one FIFO that
 * the threads serve round-robin (one job per turn, then the app goes to the
 * back). So a slow app's backlog never sits in front of another app's
 * request: the other app joins the ready FIFO behind at most one turn of each
 * app, and a slow app holds at most `app_concurrency` threads.
 *
 * Admission: a submitted job is rejected (handed back to the caller, not run)
 * when its app already has `app_queue` jobs waiting beyond the ones it can
 * start now (running + queued >= app_concurrency + app_queue).
 *
 * Knows nothing about HTTP or Wasmtime: items are intrusive list nodes that
 * the caller embeds in its own job struct; testable alone
 * (tests/cserver/c/test_pool.c). */
#ifndef TS_POOL_H
#define TS_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct ts_pool_app;

/* Embed in the caller's job; `app` set before submitting. */
typedef struct ts_pool_item {
  struct ts_pool_item *next;
  struct ts_pool_app *app;
} ts_pool_item;

/* Per-app state; zero-initialised, lives as long as the pool (the registry
 * never frees apps). Counts are guarded by the pool lock; the atomics mirror
 * them for metrics readers that do not take it. */
typedef struct ts_pool_app {
  ts_pool_item *head, *tail; /* jobs waiting, oldest first */
  int queued, running;
  int in_ready; /* linked in the pool's ready FIFO */
  struct ts_pool_app *next_ready;
  _Atomic int queued_now, running_now;
  _Atomic uint64_t rejected_total;
  _Atomic uint32_t short_streak; /* runs in a row that took under the caller's "short" (ts_pool_note_run) */
} ts_pool_app;

/* Runs one job on a pool thread. The pool does not touch the item after
 * this returns (the callback may hand it back to its owner). */
typedef void (*ts_pool_run_fn)(ts_pool_item *item, void *arg);

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  ts_pool_app *ready_head, *ready_tail;
  int runnable;        /* jobs that a free thread could start now (sum over ready apps) */
  int free;            /* awake threads not running a job, including woken ones */
  int sleepers;        /* threads waiting and not yet woken */
  int wakes;           /* wake-ups sent and not yet taken by a waiter */
  _Atomic int pending; /* = runnable, readable without the lock (spinning threads) */
  int spinning;        /* a thread is looking for work before sleeping (at most one) */
  int stop;
  int app_concurrency, app_queue;
  unsigned spin_us;
  ts_pool_run_fn run;
  void *arg;
  pthread_t *threads;
  int n;
} ts_pool;

/* Start `threads` threads. 0, or -1 with err (threads started are stopped). */
int ts_pool_start(ts_pool *p, int threads, int app_concurrency, int app_queue, unsigned spin_us, ts_pool_run_fn run,
                  void *arg, char *err, size_t errlen);

/* Queue a list of items (linked by next) with one lock, in order. Returns the
 * items rejected by their app's queue limit, in order (NULL: all queued);
 * those are not run and belong to the caller again. */
ts_pool_item *ts_pool_submit(ts_pool *p, ts_pool_item *list);

/* Run one of a's jobs on the caller's own thread instead of a pool thread
 * ("inline"), within the same per-app limit: returns 1 and counts it as
 * running when a has room and nothing queued (a job already waiting goes
 * first), else 0 (submit it instead). Every 1 must be paired with
 * ts_pool_end once the job has run. */
int ts_pool_try_begin(ts_pool *p, ts_pool_app *a);

/* The inline job of ts_pool_try_begin has run: a's slot is free again, and
 * a pool thread is woken when that made a queued job of a startable. */
void ts_pool_end(ts_pool *p, ts_pool_app *a);

/* Record how long one of a's runs took (µs, wall clock, wherever it ran):
 * a run under `short_us` extends a's streak of short runs, a longer one
 * ends it. Lock-free; for deciding which apps may run inline. */
void ts_pool_note_run(ts_pool_app *a, uint64_t us, uint64_t short_us);

/* a's last `n` runs (at least) were all short. */
int ts_pool_app_runs_short(const ts_pool_app *a, uint32_t n);

/* Let the threads finish the queued jobs, then join them. Submitting after
 * this is not allowed. */
void ts_pool_stop(ts_pool *p);

/* The default for app-concurrency: half the guest threads, at least 1, so
 * one app can never take every thread. */
int ts_pool_default_concurrency(int threads);

#endif
