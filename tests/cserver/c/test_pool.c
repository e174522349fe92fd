/* Unit tests of the guest-thread pool (ts_pool.c) alone: per-app concurrency
 * limit, bounded per-app queue (rejections), round-robin between apps, order
 * within an app, drain on stop. Jobs are plain structs whose "guest" blocks
 * on a gate the test opens. Built with -fsanitize=address,undefined (and run
 * under -fsanitize=thread too when available). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_pool.h"

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
  ts_pool_item item; /* first: the item is the job */
  int app, seq;
  int gated; /* wait for the gate of its app */
} tjob;

/* What the "guests" did, under one lock. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int open[4];    /* gate per app */
  int running[4]; /* now */
  int max_running[4];
  int done;
  int started;
  int order[256][2]; /* start order: (app, seq) */
} g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void run(ts_pool_item *it, void *arg) {
  (void)arg;
  tjob *j = (tjob *)it;
  pthread_mutex_lock(&g.mu);
  if (g.started < 256) {
    g.order[g.started][0] = j->app;
    g.order[g.started][1] = j->seq;
  }
  g.started++;
  if (++g.running[j->app] > g.max_running[j->app]) g.max_running[j->app] = g.running[j->app];
  pthread_cond_broadcast(&g.cv);
  while (j->gated && !g.open[j->app]) pthread_cond_wait(&g.cv, &g.mu);
  g.running[j->app]--;
  g.done++;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
}

static void reset(void) {
  pthread_mutex_lock(&g.mu);
  memset(g.open, 0, sizeof g.open);
  memset(g.running, 0, sizeof g.running);
  memset(g.max_running, 0, sizeof g.max_running);
  g.done = g.started = 0;
  pthread_mutex_unlock(&g.mu);
}

/* Wait (bounded) until cond holds under g.mu; returns whether it did. */
#define WAIT_FOR(cond)                                                                                                 \
  ({                                                                                                                   \
    struct timespec until;                                                                                             \
    clock_gettime(CLOCK_REALTIME, &until);                                                                             \
    until.tv_sec += 10;                                                                                                \
    int ok = 1;                                                                                                        \
    pthread_mutex_lock(&g.mu);                                                                                         \
    while (!(cond) && ok)                                                                                              \
      if (pthread_cond_timedwait(&g.cv, &g.mu, &until)) ok = (cond);                                                   \
    pthread_mutex_unlock(&g.mu);                                                                                       \
    ok;                                                                                                                \
  })

static void open_gate(int app) {
  pthread_mutex_lock(&g.mu);
  g.open[app] = 1;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
}

static ts_pool_item *one(tjob *j) {
  j->item.next = NULL;
  return &j->item;
}

static int count(ts_pool_item *l) {
  int n = 0;
  for (; l; l = l->next) n++;
  return n;
}

/* A slow app holds at most app_concurrency threads; its backlog beyond
 * app_queue is handed back; another app still gets a thread at once. */
static void test_limits_and_isolation(void) {
  ts_pool p;
  ts_pool_app a = {0}, b = {0};
  char err[128];
  reset();
  CHECK(ts_pool_start(&p, 4, 2, 3, 0, run, NULL, err, sizeof err) == 0);
  tjob ja[8], jb[2];
  ts_pool_item *list = NULL, **link = &list;
  for (int i = 0; i < 8; i++) {
    ja[i] = (tjob){{NULL, &a}, 0, i, 1};
    *link = &ja[i].item;
    link = &ja[i].item.next;
  }
  ts_pool_item *rej = ts_pool_submit(&p, list);
  /* 2 may run + 3 may wait: 3 of 8 refused, the last three, in order */
  CHECK(count(rej) == 3);
  CHECK(rej == &ja[5].item && rej->next == &ja[6].item && rej->next->next == &ja[7].item);
  CHECK(atomic_load(&a.rejected_total) == 3);
  CHECK(WAIT_FOR(g.running[0] == 2));
  CHECK(atomic_load(&a.running_now) == 2 && atomic_load(&a.queued_now) == 3);
  /* a full app refuses one more, but another app runs now */
  tjob extra = {{NULL, &a}, 0, 99, 1};
  CHECK(ts_pool_submit(&p, one(&extra)) == &extra.item);
  jb[0] = (tjob){{NULL, &b}, 1, 0, 0};
  CHECK(ts_pool_submit(&p, one(&jb[0])) == NULL);
  CHECK(WAIT_FOR(g.done == 1));
  jb[1] = (tjob){{NULL, &b}, 1, 1, 0};
  CHECK(ts_pool_submit(&p, one(&jb[1])) == NULL);
  CHECK(WAIT_FOR(g.done == 2));
  CHECK(g.max_running[0] == 2); /* never more than its limit, though threads were free */
  open_gate(0);
  CHECK(WAIT_FOR(g.done == 7));
  CHECK(g.max_running[0] == 2);
  ts_pool_stop(&p);
  CHECK(atomic_load(&a.running_now) == 0 && atomic_load(&a.queued_now) == 0);
  CHECK(atomic_load(&b.rejected_total) == 0);
}

/* Within an app, jobs start in submission order. Observable without a race
 * only when the app runs one job at a time (with two, two threads take k and
 * k+1 in order but may record their start in either order), so: several
 * threads, app concurrency 1, two apps interleaved. */
static void test_order_within_app(void) {
  ts_pool p;
  ts_pool_app a = {0}, b = {0};
  char err[128];
  reset();
  open_gate(0);
  open_gate(1);
  CHECK(ts_pool_start(&p, 3, 1, 100, 0, run, NULL, err, sizeof err) == 0);
  tjob jobs[40];
  ts_pool_item *list = NULL, **link = &list;
  for (int i = 0; i < 40; i++) {
    jobs[i] = (tjob){{NULL, i % 2 ? &b : &a}, i % 2, i / 2, 0};
    *link = &jobs[i].item;
    link = &jobs[i].item.next;
  }
  CHECK(ts_pool_submit(&p, list) == NULL);
  CHECK(WAIT_FOR(g.done == 40));
  int last[2] = {-1, -1}, in_order = 1;
  for (int i = 0; i < g.started && i < 256; i++) {
    int app = g.order[i][0], seq = g.order[i][1];
    if (seq != last[app] + 1) in_order = 0;
    last[app] = seq;
  }
  CHECK(in_order && last[0] == 19 && last[1] == 19);
  CHECK(g.max_running[0] == 1 && g.max_running[1] == 1);
  ts_pool_stop(&p);
}

/* Round-robin: with one thread, apps with backlogs alternate, so an app that
 * queued later is not served after the whole backlog of the first. */
static void test_round_robin(void) {
  ts_pool p;
  ts_pool_app a = {0}, b = {0}, c = {0};
  char err[128];
  reset();
  CHECK(ts_pool_start(&p, 1, 1, 100, 0, run, NULL, err, sizeof err) == 0);
  tjob gate = {{NULL, &c}, 2, 0, 1}; /* holds the only thread while we queue */
  CHECK(ts_pool_submit(&p, one(&gate)) == NULL);
  CHECK(WAIT_FOR(g.running[2] == 1));
  tjob ja[6], jb[3];
  ts_pool_item *list = NULL, **link = &list;
  for (int i = 0; i < 6; i++) { /* a's backlog first, then b's: one batch */
    ja[i] = (tjob){{NULL, &a}, 0, i, 0};
    *link = &ja[i].item;
    link = &ja[i].item.next;
  }
  for (int i = 0; i < 3; i++) {
    jb[i] = (tjob){{NULL, &b}, 1, i, 0};
    *link = &jb[i].item;
    link = &jb[i].item.next;
  }
  CHECK(ts_pool_submit(&p, list) == NULL);
  CHECK(atomic_load(&a.queued_now) == 6 && atomic_load(&b.queued_now) == 3);
  open_gate(2);
  CHECK(WAIT_FOR(g.done == 10));
  /* order after the gate: a0 b0 a1 b1 a2 b2 a3 a4 a5 */
  static const int want[9][2] = {{0, 0}, {1, 0}, {0, 1}, {1, 1}, {0, 2}, {1, 2}, {0, 3}, {0, 4}, {0, 5}};
  int same = 1;
  for (int i = 0; i < 9; i++)
    if (g.order[i + 1][0] != want[i][0] || g.order[i + 1][1] != want[i][1]) same = 0;
  CHECK(same);
  if (!same)
    for (int i = 1; i < 10; i++) fprintf(stderr, "  started %d: app %d seq %d\n", i, g.order[i][0], g.order[i][1]);
  ts_pool_stop(&p);
}

/* app_queue 0: only what can start now is accepted. Stop finishes what was
 * queued before joining. Many submitters at once keep the counts exact. */
static void test_zero_queue_and_stop(void) {
  ts_pool p;
  ts_pool_app a = {0};
  char err[128];
  reset();
  CHECK(ts_pool_start(&p, 2, 1, 0, 50, run, NULL, err, sizeof err) == 0);
  tjob j[3];
  ts_pool_item *list = NULL, **link = &list;
  for (int i = 0; i < 3; i++) {
    j[i] = (tjob){{NULL, &a}, 0, i, 1};
    *link = &j[i].item;
    link = &j[i].item.next;
  }
  ts_pool_item *rej = ts_pool_submit(&p, list);
  CHECK(count(rej) == 2 && rej == &j[1].item);
  CHECK(WAIT_FOR(g.running[0] == 1));
  open_gate(0);
  ts_pool_stop(&p); /* returns after the job ran */
  CHECK(g.done == 1);
  CHECK(ts_pool_default_concurrency(1) == 1 && ts_pool_default_concurrency(4) == 2 &&
        ts_pool_default_concurrency(7) == 3);
}

#define SUBMITTERS 4
#define PER_SUBMITTER 500
static ts_pool g_stress;
static ts_pool_app g_sapps[3];
static _Atomic int g_srejected;

static void *submitter(void *arg) {
  int id = (int)(intptr_t)arg;
  tjob *jobs = calloc(PER_SUBMITTER, sizeof *jobs);
  for (int i = 0; i < PER_SUBMITTER; i += 5) { /* batches of 5, like a worker's loop iteration */
    ts_pool_item *list = NULL, **link = &list;
    for (int k = i; k < i + 5; k++) {
      int app = (id + k) % 3;
      jobs[k] = (tjob){{NULL, &g_sapps[app]}, app, k, 0};
      *link = &jobs[k].item;
      link = &jobs[k].item.next;
    }
    g_srejected += count(ts_pool_submit(&g_stress, list));
    /* the jobs live until stop: keep them (freed after the pool stopped) */
  }
  return jobs;
}

static void test_stress(void) {
  char err[128];
  reset();
  open_gate(0);
  open_gate(1);
  open_gate(2);
  CHECK(ts_pool_start(&g_stress, 3, 2, 8, 50, run, NULL, err, sizeof err) == 0);
  pthread_t t[SUBMITTERS];
  for (int i = 0; i < SUBMITTERS; i++) pthread_create(&t[i], NULL, submitter, (void *)(intptr_t)i);
  void *mem[SUBMITTERS];
  for (int i = 0; i < SUBMITTERS; i++) pthread_join(t[i], &mem[i]);
  ts_pool_stop(&g_stress);
  CHECK(g.done + g_srejected == SUBMITTERS * PER_SUBMITTER);
  for (int i = 0; i < 3; i++) {
    CHECK(g.max_running[i] <= 2);
    CHECK(atomic_load(&g_sapps[i].running_now) == 0 && atomic_load(&g_sapps[i].queued_now) == 0);
  }
  uint64_t rej = 0;
  for (int i = 0; i < 3; i++) rej += atomic_load(&g_sapps[i].rejected_total);
  CHECK(rej == (uint64_t)g_srejected);
  for (int i = 0; i < SUBMITTERS; i++) free(mem[i]);
}

/* Inline runs (ts_pool_try_begin/ts_pool_end) count against the app's
 * limit like pool runs: no slot while the app is at its limit or has jobs
 * waiting (they go first); ending an inline run that held a queued job back
 * wakes a sleeping thread for it. The short-run streak. */
static void test_inline_slots(void) {
  ts_pool p;
  ts_pool_app a = {0}, b = {0};
  char err[128];
  reset();
  CHECK(ts_pool_start(&p, 2, 1, 4, 0, run, NULL, err, sizeof err) == 0);
  CHECK(ts_pool_try_begin(&p, &a) == 1); /* a's one slot, taken by the caller */
  CHECK(atomic_load(&a.running_now) == 1);
  CHECK(ts_pool_try_begin(&p, &a) == 0); /* at its limit */
  CHECK(ts_pool_try_begin(&p, &b) == 1); /* another app is not affected */
  ts_pool_end(&p, &b);
  tjob j = {{NULL, &a}, 0, 0, 0};
  CHECK(ts_pool_submit(&p, one(&j)) == NULL); /* queued behind the inline run */
  struct timespec ms20 = {0, 20000000};
  nanosleep(&ms20, NULL);
  pthread_mutex_lock(&g.mu);
  CHECK(g.started == 0); /* held back by the limit, though both threads are free */
  pthread_mutex_unlock(&g.mu);
  ts_pool_end(&p, &a); /* the slot is free: a sleeping thread takes the job */
  CHECK(WAIT_FOR(g.done == 1));
  CHECK(g.max_running[0] == 1);
  /* a job waiting comes before a new inline run */
  tjob gated = {{NULL, &a}, 0, 1, 1}, behind = {{NULL, &a}, 0, 2, 0};
  CHECK(ts_pool_submit(&p, one(&gated)) == NULL);
  CHECK(WAIT_FOR(g.running[0] == 1));
  CHECK(ts_pool_submit(&p, one(&behind)) == NULL);
  CHECK(ts_pool_try_begin(&p, &a) == 0);
  open_gate(0);
  CHECK(WAIT_FOR(g.done == 3));
  ts_pool_stop(&p);
  CHECK(ts_pool_try_begin(&p, &a) == 0); /* stopped */
  CHECK(atomic_load(&a.running_now) == 0 && atomic_load(&a.queued_now) == 0);

  ts_pool_app c = {0};
  CHECK(!ts_pool_app_runs_short(&c, 1)); /* nothing known yet */
  for (int i = 0; i < 8; i++) ts_pool_note_run(&c, 100, 1000);
  CHECK(ts_pool_app_runs_short(&c, 8) && !ts_pool_app_runs_short(&c, 9));
  ts_pool_note_run(&c, 1000, 1000); /* one long run ends the streak */
  CHECK(!ts_pool_app_runs_short(&c, 1));
}

int main(void) {
  test_inline_slots();
  test_limits_and_isolation();
  test_order_within_app();
  test_round_robin();
  test_zero_queue_and_stop();
  test_stress();
  printf("%d checks, %d failures\n", checks, failures);
  return failures ? 1 : 0;
}
