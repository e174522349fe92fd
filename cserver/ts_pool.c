#include "ts_pool.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_util.h"

int ts_pool_default_concurrency(int threads) { return threads / 2 > 1 ? threads / 2 : 1; }

/* Jobs of `a` a free thread could start now. */
static int startable(const ts_pool *p, const ts_pool_app *a) {
  int room = p->app_concurrency - a->running;
  if (room <= 0) return 0;
  return a->queued < room ? a->queued : room;
}

static void ready_append(ts_pool *p, ts_pool_app *a) {
  a->next_ready = NULL;
  a->in_ready = 1;
  if (p->ready_tail) p->ready_tail->next_ready = a;
  else p->ready_head = a;
  p->ready_tail = a;
}

/* Change a's counts by (dq, dr) and keep `runnable`, the ready FIFO and the
 * metric mirrors in step. An app leaves the FIFO only from its head (in
 * take_job), so membership is only ever added here. */
static void app_change(ts_pool *p, ts_pool_app *a, int dq, int dr) {
  int before = startable(p, a);
  a->queued += dq;
  a->running += dr;
  int after = startable(p, a);
  p->runnable += after - before;
  if (after > 0 && !a->in_ready) ready_append(p, a);
  atomic_store_explicit(&p->pending, p->runnable, memory_order_relaxed);
  atomic_store_explicit(&a->queued_now, a->queued, memory_order_relaxed);
  atomic_store_explicit(&a->running_now, a->running, memory_order_relaxed);
}

/* Waking a sleeping thread per job costs a futex round trip and, with more
 * threads than cores, a context switch storm (trivial guest: 0.66x rps).
 * So wake a sleeper only when startable jobs outnumber the awake threads not
 * running a job ("free": each takes a job before it may sleep). A thread stuck
 * in a slow guest is not free, so jobs behind it still wake another thread;
 * jobs held back by their app's concurrency limit are not startable and wake
 * nobody (the app's finishing job makes them startable). */
static void wake_some(ts_pool *p) {
  while (p->runnable > p->free && p->sleepers > 0) {
    p->sleepers--;
    p->free++;
    p->wakes++;
    pthread_cond_signal(&p->cv);
  }
}

ts_pool_item *ts_pool_submit(ts_pool *p, ts_pool_item *list) {
  ts_pool_item *rej_head = NULL, *rej_tail = NULL, *next;
  pthread_mutex_lock(&p->mu);
  for (ts_pool_item *it = list; it; it = next) {
    next = it->next;
    it->next = NULL;
    ts_pool_app *a = it->app;
    if (a->running + a->queued >= p->app_concurrency + p->app_queue) {
      atomic_fetch_add_explicit(&a->rejected_total, 1, memory_order_relaxed);
      if (rej_tail) rej_tail->next = it;
      else rej_head = it;
      rej_tail = it;
      continue;
    }
    if (a->tail) a->tail->next = it;
    else a->head = it;
    a->tail = it;
    app_change(p, a, 1, 0);
  }
  wake_some(p);
  pthread_mutex_unlock(&p->mu);
  return rej_head;
}

/* The ready FIFO's head app gives its oldest job, then goes to the back if it
 * can start more (round-robin between apps). Under the lock. */
static ts_pool_item *take_job(ts_pool *p) {
  ts_pool_app *a = p->ready_head;
  p->ready_head = a->next_ready;
  if (!p->ready_head) p->ready_tail = NULL;
  a->in_ready = 0;
  ts_pool_item *it = a->head;
  a->head = it->next;
  if (!a->head) a->tail = NULL;
  it->next = NULL;
  app_change(p, a, -1, 1); /* re-appends a when it can start another */
  return it;
}

int ts_pool_try_begin(ts_pool *p, ts_pool_app *a) {
  pthread_mutex_lock(&p->mu);
  int ok = !a->queued && a->running < p->app_concurrency && !p->stop;
  if (ok) app_change(p, a, 0, 1);
  pthread_mutex_unlock(&p->mu);
  return ok;
}

void ts_pool_end(ts_pool *p, ts_pool_app *a) {
  pthread_mutex_lock(&p->mu);
  app_change(p, a, 0, -1);
  wake_some(p); /* the caller is no pool thread: one may have to take a's next job */
  pthread_mutex_unlock(&p->mu);
}

void ts_pool_note_run(ts_pool_app *a, uint64_t us, uint64_t short_us) {
  if (us >= short_us) atomic_store_explicit(&a->short_streak, 0, memory_order_relaxed);
  else if (atomic_load_explicit(&a->short_streak, memory_order_relaxed) < UINT32_MAX)
    atomic_fetch_add_explicit(&a->short_streak, 1, memory_order_relaxed);
}

int ts_pool_app_runs_short(const ts_pool_app *a, uint32_t n) {
  return atomic_load_explicit(&a->short_streak, memory_order_relaxed) >= n;
}

static void *pool_main(void *arg) {
  ts_pool *p = arg;
  pthread_mutex_lock(&p->mu); /* counted free by ts_pool_start */
  for (;;) {
    if (!p->ready_head && !p->stop && !p->spinning && p->spin_us) {
      /* One thread stays free a moment before sleeping: back-to-back short
       * jobs then need no futex wake-up and no context switch. Yielding, so
       * the I/O threads keep their cores on a small box. */
      p->spinning = 1;
      pthread_mutex_unlock(&p->mu);
      uint64_t until = ts_now_us() + p->spin_us;
      while (!atomic_load_explicit(&p->pending, memory_order_relaxed) && ts_now_us() < until) sched_yield();
      pthread_mutex_lock(&p->mu);
      p->spinning = 0;
    }
    while (!p->ready_head && !p->stop) {
      p->free--;
      p->sleepers++;
      while (!p->wakes && !p->stop) pthread_cond_wait(&p->cv, &p->mu);
      if (p->wakes) p->wakes--; /* the waker counted us free again */
      else {
        p->sleepers--;
        p->free++;
      }
    }
    if (!p->ready_head) break; /* stopping, nothing startable */
    ts_pool_item *it = take_job(p);
    ts_pool_app *a = it->app; /* the item may be reused once run returns */
    p->free--;
    pthread_mutex_unlock(&p->mu);
    p->run(it, p->arg);
    pthread_mutex_lock(&p->mu);
    p->free++;
    /* A finish makes at most one more job startable (one of a's, held back
     * by its limit): this thread, free again, takes it next without waking
     * anyone; waking here would only add context switches. */
    app_change(p, a, 0, -1);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

int ts_pool_start(ts_pool *p, int threads, int app_concurrency, int app_queue, unsigned spin_us, ts_pool_run_fn run,
                  void *arg, char *err, size_t errlen) {
  memset(p, 0, sizeof *p);
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  p->app_concurrency = app_concurrency > 0 ? app_concurrency : ts_pool_default_concurrency(threads);
  p->app_queue = app_queue >= 0 ? app_queue : 0;
  p->spin_us = spin_us;
  p->run = run;
  p->arg = arg;
  p->threads = calloc((size_t)threads, sizeof *p->threads);
  if (!p->threads) {
    snprintf(err, errlen, "out of memory for %d guest threads", threads);
    return -1;
  }
  p->free = threads;
  for (int i = 0; i < threads; i++) {
    if (pthread_create(&p->threads[i], NULL, pool_main, p)) {
      snprintf(err, errlen, "cannot start guest thread %d of %d", i + 1, threads);
      pthread_mutex_lock(&p->mu);
      p->free -= threads - i; /* never started */
      pthread_mutex_unlock(&p->mu);
      ts_pool_stop(p);
      return -1;
    }
    p->n = i + 1;
  }
  return 0;
}

void ts_pool_stop(ts_pool *p) {
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->n; i++) pthread_join(p->threads[i], NULL);
  free(p->threads);
  p->threads = NULL;
  p->n = 0;
}
