/* /_tiramisu/health, /_tiramisu/apps (and /_tiramisu/apps/<app>), /_tiramisu/metrics. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ts_version.h"
#include "ts_metrics.h"
#include "ts_registry.h"
#include "ts_server.h"

int ts_admin_handle(const char *path, size_t len, ts_str method, ts_buf *b, const char **ctype) {
  ts_str p = {path, len};
  if (!ts_str_eq(method, "GET") && !ts_str_eq(method, "HEAD")) {
    *ctype = "text/plain";
    ts_buf_puts(b, "method not allowed\n");
    return 405;
  }
  if (ts_str_eq(p, "/_tiramisu/health")) {
    *ctype = "application/json";
    ts_buf_printf(b, "{\"status\":\"ok\",\"pid\":%d,\"uptime_s\":%.3f,\"version\":\"%s\",\"wasmtime\":\"%s\"}\n",
                  (int)getpid(), ts_wall_time() - g_metrics.started_at, TS_VERSION, TS_WASMTIME_VERSION);
    return 200;
  }
  static const char one[] = "/_tiramisu/apps/"; /* /_tiramisu/apps/<app>: that app's record only */
  size_t one_len = sizeof one - 1;
  int single = len > one_len && memcmp(path, one, one_len) == 0 && !memchr(path + one_len, '/', len - one_len);
  if (ts_str_eq(p, "/_tiramisu/apps") || single) {
    *ctype = "application/json";
    if (single) ts_registry_app_json(b, path + one_len, len - one_len);
    else ts_registry_apps_json(b);
    ts_buf_printf(b,
                  ",\"server\":{\"pid\":%d,\"version\":\"%s\",\"wasmtime\":\"%s\",\"pooling\":%s,"
                  "\"started_at_unix\":%.3f}}\n",
                  (int)getpid(), TS_VERSION, TS_WASMTIME_VERSION, g_metrics.pooling_in_use ? "true" : "false",
                  g_metrics.started_at);
    return 200;
  }
  if (ts_str_eq(p, "/_tiramisu/metrics")) {
    *ctype = "text/plain; version=0.0.4";
    ts_registry_metrics(b);
    ts_metrics_write_global(b);
    ts_buf_printf(b, "# TYPE tiramisu_pooling_allocator gauge\ntiramisu_pooling_allocator %d\n",
                  g_metrics.pooling_in_use);
    ts_buf_printf(b, "# TYPE tiramisu_uptime_seconds gauge\ntiramisu_uptime_seconds %.3f\n",
                  ts_wall_time() - g_metrics.started_at);
    return 200;
  }
  *ctype = "text/plain";
  ts_buf_puts(b, "unknown admin endpoint\n");
  return 404;
}
