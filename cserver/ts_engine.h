/* The Wasmtime side: one engine + WASI linker for the process, modules
 * compiled (or loaded from the compiled-module cache) into a pre-linked
 * InstancePre, and one fresh store + instance per request. */
#ifndef TS_ENGINE_H
#define TS_ENGINE_H

#include <stdint.h>

#include "ts_conf.h"
#include "ts_util.h"
#include "ts_wasmtime.h"

typedef struct {
  wasm_engine_t *engine;
  wasmtime_linker_t *linker;
  int pooling;             /* 1 when the pooling allocator is in use */
  char settings_id[256];   /* engine settings that change compiled code */
  char settings_hash[17];  /* short hash of settings_id, part of cache file names */
  uint64_t memory_bytes;
  uint64_t deadline_ticks;
  char cache_dir[TS_PATH_MAX];
} ts_engine;

#define TS_EPOCH_TICK_MS 5

/* 0 or -1 with err. Decides pooling (auto: when the address space allows). */
int ts_engine_init(ts_engine *e, const ts_config *cfg, char *err, size_t errlen);
void ts_engine_free(ts_engine *e);
void ts_engine_tick(ts_engine *e);

/* Compile (or load from cache) and pre-link. *from_cache says which. */
int ts_engine_load(ts_engine *e, const uint8_t *wasm, size_t len, const char *sha256_hex,
                   wasmtime_module_t **module, wasmtime_instance_pre_t **pre, int *from_cache,
                   char *err, size_t errlen);

typedef enum {
  TS_RUN_OK = 0,
  TS_RUN_EXIT,        /* proc_exit with non-zero status */
  TS_RUN_TIMEOUT,     /* epoch deadline */
  TS_RUN_TRAP,        /* wasm trap */
  TS_RUN_ERROR,       /* instantiation or host error */
  TS_RUN_OUTPUT_LIMIT /* stdout over max-output */
} ts_run_result;

typedef struct {
  const char **argv;
  size_t argc;
  const char **env_names, **env_values;
  size_t envc;
  const char *stdin_data;
  size_t stdin_len;
  int stderr_fd;
  uint64_t max_output;
} ts_run_input;

typedef struct {
  ts_buf out; /* guest stdout */
  int exit_status;
  char message[1024];
  int output_truncated;
} ts_run_output;

ts_run_result ts_engine_run(ts_engine *e, const wasmtime_instance_pre_t *pre, const ts_run_input *in,
                            ts_run_output *out);

/* Human text for an error (consumed) into buf, newlines flattened. */
void ts_wt_error_text(wasmtime_error_t *err, char *buf, size_t n);

#endif
