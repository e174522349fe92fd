/* Process-wide counters, exported as Prometheus text by the admin endpoint. */
#ifndef TS_METRICS_H
#define TS_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "ts_util.h"

#define TS_STATUS_SLOTS 500 /* statuses 100..599 */
#define TS_LAT_BUCKETS 14

typedef struct {
  _Atomic uint64_t by_status[TS_STATUS_SLOTS];
} ts_status_counts;

typedef struct {
  ts_status_counts other;                          /* requests not routed to an app (errors, 404, admin) */
  _Atomic uint64_t lat_bucket[TS_LAT_BUCKETS + 1]; /* last = +Inf */
  _Atomic uint64_t lat_sum_us, lat_count;
  _Atomic uint64_t instances_total, instances_active;
  _Atomic uint64_t swaps_total, compile_errors_total, compiles_total, cache_hits_total;
  _Atomic uint64_t precompiled_used_total, precompiled_refused_total;
  _Atomic uint64_t timeouts_total, traps_total;
  _Atomic uint64_t connections_active, connections_total;
  /* process facts, set once at start-up (ts_main.c) before any thread reads them */
  double started_at;  /* wall clock, seconds */
  int pooling_in_use; /* the engine got the pooling allocator */
} ts_metrics;

extern ts_metrics g_metrics;
extern const double ts_lat_bounds_s[TS_LAT_BUCKETS];

void ts_metrics_status(ts_status_counts *c, int status);
void ts_metrics_latency(uint64_t us);
/* Append the counters of `c` as samples of tiramisu_requests_total{app=...}. */
int ts_metrics_write_status(ts_buf *b, const char *app, const ts_status_counts *c);
int ts_metrics_write_global(ts_buf *b);

#endif
