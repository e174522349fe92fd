/* WASI 0.2 command components (a component exporting wasi:cli/run), run per
 * request like a preview 1 command module: the same argv, environment, stdin
 * body, stdout (the CGI response) and stderr (the app log), the same epoch
 * deadline, memory limit and output limit.
 *
 * Loading (compile, compiled-code cache, precompiled files) is shared with
 * modules in ts_engine_load, which calls here for a component's own steps. */
#ifndef TS_COMPONENT_H
#define TS_COMPONENT_H

#include <stddef.h>
#include <stdint.h>

#include "ts_engine.h"

typedef struct ts_component {
  wasmtime_component_t *component;
  wasmtime_component_export_index_t *run_iface; /* the wasi:cli/run@0.2.x instance export */
  wasmtime_component_export_index_t *run_func;  /* its `run` function */
  char run_name[48];                            /* e.g. "wasi:cli/run@0.2.6" */
} ts_component;

/* 1 when the binary is a component (preamble layer field 1), 0 for a core
 * module or anything else (pure). */
int ts_is_component(const uint8_t *wasm, size_t len);

/* The engine's component linker with WASI 0.2 (wasi:cli, io, clocks, random,
 * filesystem, sockets as Wasmtime defines them; no wasi:http). 0 or -1 + err. */
int ts_component_linker_init(ts_engine *e, char *err, size_t errlen);
void ts_component_linker_free(ts_engine *e);

/* Take a compiled component: find its wasi:cli/run export and check that it
 * links against the engine's linker (one instantiation in a scratch store,
 * no guest code of ours runs). On success *out owns `component`; on failure
 * the component is deleted and err says why (one line). */
int ts_component_prepare(ts_engine *e, wasmtime_component_t *component, ts_component **out, char *err, size_t errlen);
void ts_component_free(ts_component *c);

/* One request: a fresh store, instantiate, call wasi:cli/run. */
ts_run_result ts_component_run(ts_engine *e, const ts_component *c, const ts_run_input *in, ts_run_output *out);

#endif
