#include "ts_component.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_log.h"
#include "ts_metrics.h"

int ts_is_component(const uint8_t *wasm, size_t len) {
  /* preamble: "\0asm", a 16-bit version, a 16-bit layer (0: core module, 1: component) */
  return len >= 8 && memcmp(wasm, "\0asm", 4) == 0 && wasm[6] == 1 && wasm[7] == 0;
}

int ts_component_linker_init(ts_engine *e, char *err, size_t errlen) {
  e->component_linker = wasmtime_component_linker_new(e->engine);
  if (!e->component_linker) {
    snprintf(err, errlen, "wasmtime: cannot create the component linker");
    return -1;
  }
  wasmtime_error_t *werr = wasmtime_component_linker_add_wasip2(e->component_linker);
  if (werr) {
    char msg[512];
    ts_wt_error_text(werr, msg, sizeof msg);
    snprintf(err, errlen, "wasmtime: cannot define WASI 0.2 for components: %s", msg);
    return -1;
  }
  return 0;
}

void ts_component_linker_free(ts_engine *e) {
  if (e->component_linker) wasmtime_component_linker_delete(e->component_linker);
  e->component_linker = NULL;
}

void ts_component_free(ts_component *c) {
  if (!c) return;
  if (c->run_func) wasmtime_component_export_index_delete(c->run_func);
  if (c->run_iface) wasmtime_component_export_index_delete(c->run_iface);
  if (c->component) wasmtime_component_delete(c->component);
  free(c);
}

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The export named `<iface>@0.2.N` (any N; WASI 0.2 minor releases are
 * compatible) or without a version. */
static wasmtime_component_export_index_t *find_export(wasmtime_component_t *comp, const char *iface, char *name,
                                                      size_t n) {
  wasmtime_component_export_index_t *idx;
  for (int minor = 0; minor < 100; minor++) {
    snprintf(name, n, "%s@0.2.%d", iface, minor);
    if ((idx = wasmtime_component_get_export_index(comp, NULL, name, strlen(name)))) return idx;
  }
  snprintf(name, n, "%s", iface);
  return wasmtime_component_get_export_index(comp, NULL, name, strlen(name));
}

/* Stdout and stderr of one run. */
typedef struct {
  ts_buf *buf;
  uint64_t max;
  int *truncated;
} csink;

static ptrdiff_t stdout_cb(void *data, const unsigned char *p, size_t n) {
  csink *s = data;
  /* Over the cap the bytes are accepted and dropped (as for modules); the request becomes a 500. */
  if (*s->truncated || s->buf->n + n > s->max) *s->truncated = 1;
  else if (ts_buf_append(s->buf, p, n)) *s->truncated = 1;
  return (ptrdiff_t)n;
}

static ptrdiff_t stderr_cb(void *data, const unsigned char *p, size_t n) {
  ts_log_app_write(data, p, n);
  return (ptrdiff_t)n;
}

/* A store ready to instantiate in: limits, deadline, WASI. NULL + err on failure. */
static wasmtime_store_t *new_store(ts_engine *e, const ts_run_input *in, csink *out, uint64_t ticks, char *err,
                                   size_t errlen) {
  wasmtime_store_t *store = wasmtime_store_new(e->engine, NULL, NULL);
  if (!store) {
    snprintf(err, errlen, "cannot create a store");
    return NULL;
  }
  wasmtime_context_t *ctx = wasmtime_store_context(store);
  /* an app map's per-route memory limit, at most the server's (as ts_engine_run) */
  uint64_t mem = in && in->memory_bytes && in->memory_bytes < e->memory_bytes ? in->memory_bytes : e->memory_bytes;
  wasmtime_store_limiter(store, (int64_t)mem, -1, -1, -1, -1);
  wasmtime_context_set_epoch_deadline(ctx, ticks);
  wasi_config_t *wasi = wasi_config_new();
  if (in) {
    wasi_config_set_argv(wasi, in->argc, in->argv);
    wasi_config_set_env(wasi, in->envc, in->env_names, in->env_values);
    wasm_byte_vec_t stdin_vec;
    wasm_byte_vec_new(&stdin_vec, in->stdin_len, (const wasm_byte_t *)in->stdin_data);
    wasi_config_set_stdin_bytes(wasi, &stdin_vec); /* takes the vector */
    wasi_config_set_stdout_custom(wasi, stdout_cb, out, NULL);
    wasi_config_set_stderr_custom(wasi, stderr_cb, in->stderr_log, NULL);
    /* An app map route's folders: wasi:filesystem/preopens of the same context. */
    for (size_t i = 0; i < in->npreopens; i++)
      if (!wasi_config_preopen_dir(wasi, in->preopens[i].host, in->preopens[i].guest, in->preopens[i].writable != 0))
        ts_log_warn("cannot preopen %s at %s for the guest", in->preopens[i].host, in->preopens[i].guest);
  }
  /* The same WASI context serves preview 1 and WASI 0.2 in Wasmtime's C API. */
  wasmtime_error_t *werr = wasmtime_context_set_wasi(ctx, wasi); /* takes the config */
  if (werr) {
    ts_wt_error_text(werr, err, errlen);
    wasmtime_store_delete(store);
    return NULL;
  }
  return store;
}

int ts_component_prepare(ts_engine *e, wasmtime_component_t *component, ts_component **out, char *err, size_t errlen) {
  ts_component *c = calloc(1, sizeof *c);
  if (!c) {
    wasmtime_component_delete(component);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  c->component = component;
  char other[64];
  c->run_iface = find_export(component, "wasi:cli/run", c->run_name, sizeof c->run_name);
  if (!c->run_iface) {
    wasmtime_component_export_index_t *http = find_export(component, "wasi:http/incoming-handler", other, sizeof other);
    if (http) {
      wasmtime_component_export_index_delete(http);
      snprintf(err, errlen,
               "component exports %s but not wasi:cli/run: wasi:http handlers are not supported "
               "(the Wasmtime C API cannot create their request; see cserver/README.md)",
               other);
    } else {
      snprintf(err, errlen, "component exports no wasi:cli/run (not a WASI 0.2 command)");
    }
    ts_component_free(c);
    return -1;
  }
  c->run_func = wasmtime_component_get_export_index(component, c->run_iface, "run", 3);
  if (!c->run_func) {
    snprintf(err, errlen, "component's %s export has no run function", c->run_name);
    ts_component_free(c);
    return -1;
  }
  /* Link check: every import must be one the linker defines. */
  char why[600];
  wasmtime_store_t *store = new_store(e, NULL, NULL, 1000, why, sizeof why);
  if (!store) {
    snprintf(err, errlen, "link check failed: %s", why);
    ts_component_free(c);
    return -1;
  }
  wasmtime_component_instance_t inst;
  wasmtime_error_t *werr =
      wasmtime_component_linker_instantiate(e->component_linker, wasmtime_store_context(store), component, &inst);
  wasmtime_store_delete(store);
  if (werr) {
    ts_wt_error_text(werr, why, sizeof why);
    snprintf(err, errlen, "link failed: %s", why);
    ts_component_free(c);
    return -1;
  }
  *out = c;
  return 0;
}

ts_run_result ts_component_run(ts_engine *e, const ts_component *c, const ts_run_input *in, ts_run_output *out) {
  ts_run_result result = TS_RUN_OK;
  uint64_t now_ns = mono_ns();
  uint64_t deadline_ns = in->deadline_us ? in->deadline_us * 1000u : now_ns + e->timeout_ms * 1000000u;
  out->message[0] = 0;
  out->exit_status = 0;
  if (deadline_ns <= now_ns) {
    snprintf(out->message, sizeof out->message,
             "request timed out (deadline passed while it waited for a guest thread)");
    return TS_RUN_TIMEOUT;
  }
  /* A component's one entry point is wasi:cli/run: an app map route naming
   * another (WAGI `entrypoint`) cannot be honoured, and is refused rather than
   * answered by the wrong code. */
  if (in->entrypoint && strcmp(in->entrypoint, "_start") != 0) {
    snprintf(out->message, sizeof out->message,
             "the route's entry point '%.200s' cannot be called: a WASI 0.2 component runs %s only", in->entrypoint,
             c->run_name);
    out->no_entrypoint = 1;
    return TS_RUN_ERROR;
  }
  uint64_t ticks = (deadline_ns - now_ns + TS_EPOCH_TICK_MS * 1000000u - 1) / (TS_EPOCH_TICK_MS * 1000000u) + 1;
  csink sink = {&out->out, in->max_output, &out->output_truncated};
  wasmtime_store_t *store = new_store(e, in, &sink, ticks, out->message, sizeof out->message);
  if (!store) return TS_RUN_ERROR;
  wasmtime_context_t *ctx = wasmtime_store_context(store);

  atomic_fetch_add_explicit(&g_metrics.instances_total, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&g_metrics.instances_active, 1, memory_order_relaxed);
  wasmtime_component_instance_t inst;
  wasmtime_component_func_t run;
  wasmtime_component_val_t ret;
  memset(&ret, 0, sizeof ret);
  int called = 0;
  wasmtime_error_t *werr = wasmtime_component_linker_instantiate(e->component_linker, ctx, c->component, &inst);
  if (!werr) {
    if (!wasmtime_component_instance_get_func(&inst, ctx, c->run_func, &run)) {
      snprintf(out->message, sizeof out->message, "component has no %s.run function", c->run_name);
      result = TS_RUN_ERROR;
    } else {
      werr = wasmtime_component_func_call(&run, ctx, NULL, 0, &ret, 1);
      called = !werr;
    }
  }
  if (called) {
    /* run: func() -> result; an error result is exit status 1, as in Wasmtime's CLI */
    if (ret.kind == WASMTIME_COMPONENT_RESULT && !ret.of.result.is_ok) {
      out->exit_status = 1;
      result = TS_RUN_EXIT;
      snprintf(out->message, sizeof out->message, "guest's run returned an error (exit status 1)");
    }
    wasmtime_component_val_delete(&ret);
  } else if (werr) {
    int status;
    if (wasmtime_error_exit_status(werr, &status)) { /* wasi:cli/exit */
      out->exit_status = status;
      result = status == 0 ? TS_RUN_OK : TS_RUN_EXIT;
      if (status) snprintf(out->message, sizeof out->message, "guest exited with status %d", status);
      wasmtime_error_delete(werr);
    } else {
      ts_wt_error_text(werr, out->message, sizeof out->message);
      /* A component call reports traps as errors: the epoch interrupt is the
       * one that comes at (or after) the request's deadline. */
      if (mono_ns() >= deadline_ns || strstr(out->message, "interrupt")) {
        result = TS_RUN_TIMEOUT;
        snprintf(out->message, sizeof out->message, "request timed out (epoch deadline)");
      } else {
        result = TS_RUN_TRAP;
      }
    }
  }
  wasmtime_store_delete(store);
  atomic_fetch_sub_explicit(&g_metrics.instances_active, 1, memory_order_relaxed);
  if (result == TS_RUN_OK && out->output_truncated) {
    snprintf(out->message, sizeof out->message, "guest output over the max-output limit");
    result = TS_RUN_OUTPUT_LIMIT;
  }
  return result;
}
