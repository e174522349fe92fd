#include "ts_metrics.h"

ts_metrics g_metrics;
const double ts_lat_bounds_s[TS_LAT_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                0.1,    0.25,  0.5,    1,     2.5,  5,     10};

void ts_metrics_status(ts_status_counts *c, int status) {
  if (status < 100 || status > 599) status = 500;
  atomic_fetch_add_explicit(&c->by_status[status - 100], 1, memory_order_relaxed);
}

void ts_metrics_latency(uint64_t us) {
  int i = 0;
  while (i < TS_LAT_BUCKETS && (double)us / 1e6 > ts_lat_bounds_s[i]) i++;
  atomic_fetch_add_explicit(&g_metrics.lat_bucket[i], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&g_metrics.lat_sum_us, us, memory_order_relaxed);
  atomic_fetch_add_explicit(&g_metrics.lat_count, 1, memory_order_relaxed);
}

int ts_metrics_write_status(ts_buf *b, const char *app, const ts_status_counts *c) {
  int rc = 0;
  for (int i = 0; i < TS_STATUS_SLOTS; i++) {
    uint64_t v = atomic_load_explicit(&c->by_status[i], memory_order_relaxed);
    if (v)
      rc |= ts_buf_printf(b, "tiramisu_requests_total{app=\"%s\",status=\"%d\"} %llu\n", app, i + 100,
                          (unsigned long long)v);
  }
  return rc;
}

#define LD(x) ((unsigned long long)atomic_load_explicit(&(x), memory_order_relaxed))

int ts_metrics_write_global(ts_buf *b) {
  int rc = 0;
  uint64_t cum = 0;
  rc |= ts_buf_puts(b, "# HELP tiramisu_request_duration_seconds Time from complete request to response.\n"
                       "# TYPE tiramisu_request_duration_seconds histogram\n");
  for (int i = 0; i <= TS_LAT_BUCKETS; i++) {
    cum += LD(g_metrics.lat_bucket[i]);
    if (i < TS_LAT_BUCKETS)
      rc |= ts_buf_printf(b, "tiramisu_request_duration_seconds_bucket{le=\"%g\"} %llu\n", ts_lat_bounds_s[i],
                          (unsigned long long)cum);
    else
      rc |= ts_buf_printf(b, "tiramisu_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
  }
  rc |= ts_buf_printf(b, "tiramisu_request_duration_seconds_sum %.6f\n", (double)LD(g_metrics.lat_sum_us) / 1e6);
  rc |= ts_buf_printf(b, "tiramisu_request_duration_seconds_count %llu\n", LD(g_metrics.lat_count));
  rc |= ts_buf_printf(b,
                      "# TYPE tiramisu_instances_total counter\ntiramisu_instances_total %llu\n"
                      "# TYPE tiramisu_instances_active gauge\ntiramisu_instances_active %llu\n"
                      "# TYPE tiramisu_swaps_total counter\ntiramisu_swaps_total %llu\n"
                      "# TYPE tiramisu_compile_errors_total counter\ntiramisu_compile_errors_total %llu\n"
                      "# TYPE tiramisu_compiles_total counter\ntiramisu_compiles_total %llu\n"
                      "# TYPE tiramisu_compile_cache_hits_total counter\ntiramisu_compile_cache_hits_total %llu\n"
                      "# TYPE tiramisu_precompiled_used_total counter\ntiramisu_precompiled_used_total %llu\n"
                      "# TYPE tiramisu_precompiled_refused_total counter\ntiramisu_precompiled_refused_total %llu\n"
                      "# TYPE tiramisu_timeouts_total counter\ntiramisu_timeouts_total %llu\n"
                      "# TYPE tiramisu_traps_total counter\ntiramisu_traps_total %llu\n"
                      "# TYPE tiramisu_connections_active gauge\ntiramisu_connections_active %llu\n"
                      "# TYPE tiramisu_connections_total counter\ntiramisu_connections_total %llu\n",
                      LD(g_metrics.instances_total), LD(g_metrics.instances_active), LD(g_metrics.swaps_total),
                      LD(g_metrics.compile_errors_total), LD(g_metrics.compiles_total), LD(g_metrics.cache_hits_total),
                      LD(g_metrics.precompiled_used_total), LD(g_metrics.precompiled_refused_total),
                      LD(g_metrics.timeouts_total), LD(g_metrics.traps_total), LD(g_metrics.connections_active),
                      LD(g_metrics.connections_total));
  return rc;
}
