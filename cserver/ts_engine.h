/* The Wasmtime side: one engine + WASI linker for the process, modules
 * compiled (or loaded from the compiled-module cache) into a pre-linked
 * InstancePre, and one fresh store + instance per request. */
#ifndef TS_ENGINE_H
#define TS_ENGINE_H

#include <stdint.h>

#include "ts_conf.h"
#include "ts_util.h"
#include "ts_wasmtime.h"

/* Every engine setting the server chooses, decided once (ts_engine_plan) and
 * then both applied to the engine and printed by --engine-settings: deploy
 * reads that JSON to precompile modules with an identical engine, so this
 * struct is the one source of truth for "what the box's engine looks like". */
typedef struct {
  int epoch_interruption; /* always 1: request deadlines */
  int opt_speed;          /* always 1: Cranelift optimizes for speed */
  int wasm_threads;       /* always 0: no shared memories */
  int pooling;            /* 1: pooling allocator, 0: on-demand */
  uint32_t slots;         /* pooling: instances/memories/tables/stacks/gc heaps */
  uint64_t memory_bytes;  /* store limiter; pooling max memory size */
  uint64_t keep_resident; /* pooling: bytes of a slot reset with memset, not madvise (no effect on code) */
  uint64_t reservation;   /* on-demand: memory reservation */
  uint64_t guard;         /* on-demand: memory guard size */
  uint64_t growth;        /* on-demand: reservation for growth */
  char id[256];           /* the settings that change compiled code, as text */
  char hash[17];          /* short hash of id, part of cache file names */
} ts_engine_settings;

typedef struct {
  wasm_engine_t *engine;
  wasmtime_linker_t *linker;
  wasmtime_component_linker_t *component_linker; /* WASI 0.2 components (ts_component.c) */
  /* For guests with preopened folders: stdout/stderr still take our fast
   * fd_write/fd_fdstat_get, every other descriptor goes to Wasmtime's WASI
   * (reached through wasi_bridge, see ts_engine.c). */
  wasmtime_linker_t *linker_files;
  wasmtime_linker_t *linker_wasi; /* Wasmtime's WASI untouched: what the bridge imports */
  wasmtime_module_t *wasi_bridge; /* a tiny module that calls Wasmtime's WASI as the guest */
  int pooling;                    /* 1 when the pooling allocator is in use */
  ts_engine_settings settings;
  uint64_t memory_bytes;
  uint64_t timeout_ms; /* per request: epoch deadline and host calls that wait (poll_oneoff) */
  char cache_dir[TS_PATH_MAX];
} ts_engine;

#define TS_EPOCH_TICK_MS 5

/* Decide the engine settings for cfg (pooling auto: probes the address space). */
void ts_engine_plan(const ts_config *cfg, ts_engine_settings *s);
/* The settings as one JSON object (what `custom_server --engine-settings` prints). */
void ts_engine_settings_json(const ts_engine_settings *s, const char *cache_dir, ts_buf *out);

/* 0 or -1 with err. Decides pooling (auto: when the address space allows). */
int ts_engine_init(ts_engine *e, const ts_config *cfg, char *err, size_t errlen);
void ts_engine_free(ts_engine *e);
void ts_engine_tick(ts_engine *e);

/* Where a loaded module's machine code came from. */
enum { TS_LOAD_COMPILED = 0, TS_LOAD_CACHE = 1, TS_LOAD_PRECOMPILED = 2 };
const char *ts_load_source_name(int source);

/* Load a module and pre-link it. Tried in order: `precompiled` when given
 * (--check-module --precompiled: the file deploy is about to install; never
 * moved or deleted); the server's own cache entry <cache>/<sha>-<settings
 * hash>.cwasm; a precompiled module shipped by deploy as <cache>/<sha>.cwasm
 * (adopted as the cache entry when used); compiling (then cached). Wasmtime
 * refuses a precompiled module built by another version or with other engine
 * settings or CPU features: that is logged and the module compiled instead.
 * *source is TS_LOAD_*. */
struct ts_component;
/* A component (ts_is_component) goes the same way (cache, precompiled,
 * compile) into *component, with *module and *pre NULL; a module leaves
 * *component NULL. component may be NULL: components are then refused. */
int ts_engine_load(ts_engine *e, const uint8_t *wasm, size_t len, const char *sha256_hex, const char *precompiled,
                   wasmtime_module_t **module, wasmtime_instance_pre_t **pre, struct ts_component **component,
                   int *source, char *err, size_t errlen);

typedef enum {
  TS_RUN_OK = 0,
  TS_RUN_EXIT,        /* proc_exit with non-zero status */
  TS_RUN_TIMEOUT,     /* deadline: epoch interrupt, or reached in poll_oneoff */
  TS_RUN_TRAP,        /* wasm trap */
  TS_RUN_ERROR,       /* instantiation or host error */
  TS_RUN_OUTPUT_LIMIT /* stdout over max-output */
} ts_run_result;

/* A folder preopened for the guest (app maps: volumes). */
typedef struct {
  const char *host, *guest;
  int writable;
} ts_preopen;

typedef struct {
  const char **argv;
  size_t argc;
  const char **env_names, **env_values;
  size_t envc;
  const char *stdin_data;
  size_t stdin_len;
  struct ts_app_log *stderr_log; /* guest stderr (NULL: the server's stderr) */
  uint64_t max_output;
  uint64_t deadline_us;       /* CLOCK_MONOTONIC (ts_now_us); 0 = timeout-ms from now */
  const char *entrypoint;     /* the export to call; NULL = "_start" */
  const ts_preopen *preopens; /* run with the pre-link from ts_engine_prelink_files */
  size_t npreopens;
  uint64_t memory_bytes; /* the app's own memory limit; 0 (or over the server's) = the server's */
} ts_run_input;

typedef struct {
  ts_buf out; /* guest stdout */
  int exit_status;
  char message[1024];
  int output_truncated;
  int no_entrypoint; /* the module does not export the entry point asked for */
} ts_run_output;

ts_run_result ts_engine_run(ts_engine *e, const wasmtime_instance_pre_t *pre, const ts_run_input *in,
                            ts_run_output *out);

/* A second pre-link of `module` for runs with preopened folders (their
 * files are Wasmtime's WASI, stdout/stderr the server's). 0 or -1 with err. */
int ts_engine_prelink_files(ts_engine *e, wasmtime_module_t *module, wasmtime_instance_pre_t **pre, char *err,
                            size_t errlen);

/* Human text for an error (consumed) into buf, newlines flattened. */
void ts_wt_error_text(wasmtime_error_t *err, char *buf, size_t n);

#endif
