/* Declarations of the Wasmtime C API subset custom_server uses.
 *
 * Why our own header: the PyPI `wasmtime` wheel we ship from carries the
 * library (`_libwasmtime.so`) but no C headers, and no registry ships them for
 * the pinned version. This file is written for the pinned release (see
 * tiramisu_tasks/versions.py) and is checked by tests/cserver/test_header.py:
 * every function below must be exported by the pinned library, and its result
 * and argument types must agree with the ctypes signatures in that wheel's
 * `wasmtime/_bindings.py`; the struct sizes asserted below must equal the
 * ctypes sizes there.
 *
 * Format (the test parses it): one declaration per line,
 *   TS_WT_API <result type> <name>(<parameters>);
 * typedefs of scalars and function pointers on one line each.
 */
/* One declaration per line, as tests/cserver/test_header.py reads them. */
/* clang-format off */
#ifndef TS_WASMTIME_H
#define TS_WASMTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TS_WT_API extern

/* ---- scalar typedefs ---- */
typedef uint8_t wasm_byte_t;
typedef uint8_t wasmtime_opt_level_t;
typedef uint8_t wasmtime_trap_code_t;
typedef uint8_t wasmtime_extern_kind_t;
typedef uint8_t wasm_valkind_t;

#define WASMTIME_OPT_LEVEL_NONE 0
#define WASMTIME_OPT_LEVEL_SPEED 1
#define WASMTIME_EXTERN_FUNC 0
#define WASMTIME_EXTERN_MEMORY 3
#define WASM_I32 0
#define WASM_I64 1
#define WASMTIME_TRAP_CODE_MEMORY_OUT_OF_BOUNDS 1
#define WASMTIME_TRAP_CODE_UNREACHABLE_CODE_REACHED 9
#define WASMTIME_TRAP_CODE_INTERRUPT 10

/* ---- opaque handles ---- */
typedef struct wasm_config_t wasm_config_t;
typedef struct wasm_engine_t wasm_engine_t;
typedef struct wasm_trap_t wasm_trap_t;
typedef struct wasmtime_error_t wasmtime_error_t;
typedef struct wasmtime_module_t wasmtime_module_t;
typedef struct wasmtime_linker_t wasmtime_linker_t;
typedef struct wasmtime_instance_pre_t wasmtime_instance_pre_t;
typedef struct wasmtime_store_t wasmtime_store_t;
typedef struct wasmtime_context_t wasmtime_context_t;
typedef struct wasi_config_t wasi_config_t;
typedef struct wasmtime_pooling_allocation_config_t wasmtime_pooling_allocation_config_t;
typedef struct wasmtime_caller_t wasmtime_caller_t;
typedef struct wasm_valtype_t wasm_valtype_t;
typedef struct wasm_functype_t wasm_functype_t;
/* Only ever passed by pointer (we call `_start` with no params/results). */
typedef struct wasmtime_val_t wasmtime_val_t;

/* ---- structs whose layout we depend on ---- */
typedef struct wasm_byte_vec_t {
  size_t size;
  wasm_byte_t *data;
} wasm_byte_vec_t;
typedef wasm_byte_vec_t wasm_name_t;
typedef wasm_byte_vec_t wasm_message_t;

typedef struct wasmtime_func_t {
  uint64_t store_id;
  void *private_;
} wasmtime_func_t;

typedef struct wasmtime_instance_t {
  uint64_t store_id;
  size_t private_;
} wasmtime_instance_t;

typedef struct wasm_valtype_vec_t {
  size_t size;
  wasm_valtype_t **data;
} wasm_valtype_vec_t;

typedef struct wasm_exporttype_t wasm_exporttype_t;
typedef struct wasm_exporttype_vec_t {
  size_t size;
  wasm_exporttype_t **data;
} wasm_exporttype_vec_t;

typedef struct wasmtime_memory_t {
  struct {
    uint64_t store_id;
    uint32_t private1_;
  } anon_;
  uint32_t private2_;
} wasmtime_memory_t;

/* Arguments and results of an unchecked host function, in place. */
typedef union wasmtime_val_raw_t {
  int32_t i32;
  int64_t i64;
  uint8_t v128[16];
  void *funcref;
} wasmtime_val_raw_t;

typedef struct wasmtime_extern_t {
  wasmtime_extern_kind_t kind;
  union {
    wasmtime_func_t func;
    wasmtime_memory_t memory;
    uint64_t opaque_[3]; /* largest member (global/table/memory/tag) is 24 bytes */
  } of;
} wasmtime_extern_t;

#if UINTPTR_MAX == 0xffffffffffffffffu
_Static_assert(sizeof(wasm_byte_vec_t) == 16, "wasm_byte_vec_t layout");
_Static_assert(sizeof(wasmtime_func_t) == 16, "wasmtime_func_t layout");
_Static_assert(sizeof(wasmtime_instance_t) == 16, "wasmtime_instance_t layout");
_Static_assert(sizeof(wasmtime_extern_t) == 32, "wasmtime_extern_t layout");
_Static_assert(sizeof(wasmtime_memory_t) == 24, "wasmtime_memory_t layout");
_Static_assert(sizeof(wasm_valtype_vec_t) == 16, "wasm_valtype_vec_t layout");
_Static_assert(sizeof(wasm_exporttype_vec_t) == 16, "wasm_exporttype_vec_t layout");
_Static_assert(sizeof(wasmtime_val_raw_t) == 16, "wasmtime_val_raw_t layout");
#endif

/* ---- callbacks ---- */
typedef ptrdiff_t (*ts_wt_write_cb)(void *data, const unsigned char *buf, size_t len);
typedef void (*ts_wt_finalizer)(void *data);
/* Returns a wasm_trap_t * (NULL: no trap); the pinned bindings spell it size_t. */
typedef size_t (*ts_wt_unchecked_cb)(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *args_and_results, size_t num);

/* ---- vectors ---- */
TS_WT_API void wasm_byte_vec_new(wasm_byte_vec_t *out, size_t size, const wasm_byte_t *data);
TS_WT_API void wasm_byte_vec_delete(wasm_byte_vec_t *vec);

TS_WT_API wasm_valtype_t *wasm_valtype_new(wasm_valkind_t kind);
TS_WT_API void wasm_valtype_vec_new(wasm_valtype_vec_t *out, size_t size, wasm_valtype_t **data);
TS_WT_API wasm_functype_t *wasm_functype_new(wasm_valtype_vec_t *params, wasm_valtype_vec_t *results);
TS_WT_API void wasm_functype_delete(wasm_functype_t *type);

/* ---- config and engine ---- */
TS_WT_API wasm_config_t *wasm_config_new(void);
TS_WT_API wasm_engine_t *wasm_engine_new_with_config(wasm_config_t *config);
TS_WT_API void wasm_engine_delete(wasm_engine_t *engine);
TS_WT_API void wasmtime_engine_increment_epoch(wasm_engine_t *engine);
TS_WT_API void wasmtime_config_epoch_interruption_set(wasm_config_t *config, bool enable);
TS_WT_API void wasmtime_config_cranelift_opt_level_set(wasm_config_t *config, wasmtime_opt_level_t level);
TS_WT_API void wasmtime_config_max_wasm_stack_set(wasm_config_t *config, size_t size);
TS_WT_API void wasmtime_config_memory_reservation_set(wasm_config_t *config, uint64_t size);
TS_WT_API void wasmtime_config_memory_guard_size_set(wasm_config_t *config, uint64_t size);
TS_WT_API void wasmtime_config_memory_reservation_for_growth_set(wasm_config_t *config, uint64_t size);
TS_WT_API void wasmtime_config_parallel_compilation_set(wasm_config_t *config, bool enable);
TS_WT_API void wasmtime_config_wasm_threads_set(wasm_config_t *config, bool enable);

/* ---- pooling allocator ---- */
TS_WT_API wasmtime_pooling_allocation_config_t *wasmtime_pooling_allocation_config_new(void);
TS_WT_API void wasmtime_pooling_allocation_config_delete(wasmtime_pooling_allocation_config_t *pc);
TS_WT_API void wasmtime_pooling_allocation_config_total_core_instances_set(wasmtime_pooling_allocation_config_t *pc, uint32_t n);
TS_WT_API void wasmtime_pooling_allocation_config_total_memories_set(wasmtime_pooling_allocation_config_t *pc, uint32_t n);
TS_WT_API void wasmtime_pooling_allocation_config_total_tables_set(wasmtime_pooling_allocation_config_t *pc, uint32_t n);
TS_WT_API void wasmtime_pooling_allocation_config_total_stacks_set(wasmtime_pooling_allocation_config_t *pc, uint32_t n);
TS_WT_API void wasmtime_pooling_allocation_config_total_gc_heaps_set(wasmtime_pooling_allocation_config_t *pc, uint32_t n);
TS_WT_API void wasmtime_pooling_allocation_config_max_memory_size_set(wasmtime_pooling_allocation_config_t *pc, size_t bytes);
TS_WT_API void wasmtime_pooling_allocation_config_max_unused_warm_slots_set(wasmtime_pooling_allocation_config_t *pc, uint32_t n);
TS_WT_API void wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(wasmtime_pooling_allocation_config_t *pc, size_t bytes);
TS_WT_API void wasmtime_pooling_allocation_strategy_set(wasm_config_t *config, const wasmtime_pooling_allocation_config_t *pc);

/* ---- errors and traps ---- */
TS_WT_API void wasmtime_error_message(const wasmtime_error_t *error, wasm_name_t *message);
TS_WT_API void wasmtime_error_delete(wasmtime_error_t *error);
TS_WT_API bool wasmtime_error_exit_status(const wasmtime_error_t *error, int *status);
TS_WT_API void wasm_trap_message(const wasm_trap_t *trap, wasm_message_t *message);
TS_WT_API void wasm_trap_delete(wasm_trap_t *trap);
TS_WT_API bool wasmtime_trap_code(const wasm_trap_t *trap, wasmtime_trap_code_t *code);
TS_WT_API wasm_trap_t *wasmtime_trap_new(const char *msg, size_t msg_len);

/* ---- modules ---- */
TS_WT_API wasmtime_error_t *wasmtime_module_new(wasm_engine_t *engine, const uint8_t *wasm, size_t len, wasmtime_module_t **out);
TS_WT_API void wasmtime_module_delete(wasmtime_module_t *module);
TS_WT_API wasmtime_error_t *wasmtime_module_serialize(wasmtime_module_t *module, wasm_byte_vec_t *out);
TS_WT_API void wasmtime_module_exports(const wasmtime_module_t *module, wasm_exporttype_vec_t *out);
TS_WT_API const wasm_name_t *wasm_exporttype_name(const wasm_exporttype_t *type);
TS_WT_API void wasm_exporttype_vec_delete(wasm_exporttype_vec_t *vec);
TS_WT_API wasmtime_error_t *wasmtime_module_deserialize(wasm_engine_t *engine, const uint8_t *bytes, size_t len, wasmtime_module_t **out);
TS_WT_API wasmtime_error_t *wasmtime_module_deserialize_file(wasm_engine_t *engine, const char *path, wasmtime_module_t **out);

/* ---- linking ---- */
TS_WT_API wasmtime_linker_t *wasmtime_linker_new(wasm_engine_t *engine);
TS_WT_API void wasmtime_linker_delete(wasmtime_linker_t *linker);
TS_WT_API wasmtime_error_t *wasmtime_linker_define_wasi(wasmtime_linker_t *linker);
TS_WT_API void wasmtime_linker_allow_shadowing(wasmtime_linker_t *linker, bool allow);
TS_WT_API wasmtime_error_t *wasmtime_linker_define_func_unchecked(wasmtime_linker_t *linker, const char *module, size_t module_len, const char *name, size_t name_len, const wasm_functype_t *type, ts_wt_unchecked_cb callback, void *data, ts_wt_finalizer finalizer);
TS_WT_API wasmtime_error_t *wasmtime_linker_instantiate_pre(const wasmtime_linker_t *linker, const wasmtime_module_t *module, wasmtime_instance_pre_t **out);
TS_WT_API void wasmtime_instance_pre_delete(wasmtime_instance_pre_t *pre);
TS_WT_API wasmtime_error_t *wasmtime_instance_pre_instantiate(const wasmtime_instance_pre_t *pre, wasmtime_context_t *store, wasmtime_instance_t *out, wasm_trap_t **trap);

/* ---- stores ---- */
TS_WT_API wasmtime_store_t *wasmtime_store_new(wasm_engine_t *engine, void *data, ts_wt_finalizer finalizer);
TS_WT_API wasmtime_context_t *wasmtime_store_context(wasmtime_store_t *store);
TS_WT_API void wasmtime_store_limiter(wasmtime_store_t *store, int64_t memory_size, int64_t table_elements, int64_t instances, int64_t tables, int64_t memories);
TS_WT_API void wasmtime_store_delete(wasmtime_store_t *store);
TS_WT_API void wasmtime_context_set_epoch_deadline(wasmtime_context_t *context, uint64_t ticks_beyond_current);
TS_WT_API wasmtime_error_t *wasmtime_context_set_wasi(wasmtime_context_t *context, wasi_config_t *wasi);

TS_WT_API void *wasmtime_context_get_data(const wasmtime_context_t *context);

/* ---- host functions ---- */
TS_WT_API wasmtime_context_t *wasmtime_caller_context(wasmtime_caller_t *caller);
TS_WT_API bool wasmtime_caller_export_get(wasmtime_caller_t *caller, const char *name, size_t name_len, wasmtime_extern_t *item);
TS_WT_API uint8_t *wasmtime_memory_data(const wasmtime_context_t *store, const wasmtime_memory_t *memory);
TS_WT_API size_t wasmtime_memory_data_size(const wasmtime_context_t *store, const wasmtime_memory_t *memory);

/* ---- calling ---- */
TS_WT_API bool wasmtime_instance_export_get(wasmtime_context_t *store, const wasmtime_instance_t *instance, const char *name, size_t name_len, wasmtime_extern_t *item);
TS_WT_API wasmtime_error_t *wasmtime_func_call(wasmtime_context_t *store, const wasmtime_func_t *func, const wasmtime_val_t *args, size_t nargs, wasmtime_val_t *results, size_t nresults, wasm_trap_t **trap);
TS_WT_API wasmtime_error_t *wasmtime_func_call_unchecked(wasmtime_context_t *store, const wasmtime_func_t *func, wasmtime_val_raw_t *args_and_results, size_t args_and_results_len, wasm_trap_t **trap);

/* ---- the WASI bridge of runs with preopened folders (ts_engine.c) ---- */
TS_WT_API wasmtime_error_t *wasmtime_wat2wasm(const char *wat, size_t wat_len, wasm_byte_vec_t *ret);
TS_WT_API bool wasmtime_linker_get(const wasmtime_linker_t *linker, wasmtime_context_t *store, const char *module, size_t module_len, const char *name, size_t name_len, wasmtime_extern_t *item);
TS_WT_API wasmtime_error_t *wasmtime_instance_new(wasmtime_context_t *store, const wasmtime_module_t *module, const wasmtime_extern_t *imports, size_t nimports, wasmtime_instance_t *instance, wasm_trap_t **trap);

/* ---- WASI ---- */
TS_WT_API wasi_config_t *wasi_config_new(void);
TS_WT_API void wasi_config_delete(wasi_config_t *config);
TS_WT_API bool wasi_config_set_argv(wasi_config_t *config, size_t argc, const char **argv);
TS_WT_API bool wasi_config_set_env(wasi_config_t *config, size_t envc, const char **names, const char **values);
TS_WT_API void wasi_config_set_stdin_bytes(wasi_config_t *config, wasm_byte_vec_t *binary);
TS_WT_API void wasi_config_set_stdout_custom(wasi_config_t *config, ts_wt_write_cb callback, void *data, ts_wt_finalizer finalizer);
TS_WT_API void wasi_config_set_stderr_custom(wasi_config_t *config, ts_wt_write_cb callback, void *data, ts_wt_finalizer finalizer);
TS_WT_API bool wasi_config_preopen_dir(wasi_config_t *config, const char *host_path, const char *guest_path, bool fs_mutable);

/* ---- WASI 0.2 components (ts_component.c) ----
 * The layouts are the pinned release's (its _bindings.py): a component func
 * is 32 bytes there (one private pointer more than older headers), a value
 * 32 (kind, then a 24-byte union at offset 8). We only read `result` values. */
typedef struct wasmtime_component_t wasmtime_component_t;
typedef struct wasmtime_component_linker_t wasmtime_component_linker_t;
typedef struct wasmtime_component_export_index_t wasmtime_component_export_index_t;

typedef struct wasmtime_component_instance_t {
  uint64_t store_id;
  uint32_t private_;
} wasmtime_component_instance_t;

typedef struct wasmtime_component_func_t {
  struct {
    uint64_t store_id;
    uint32_t private1_;
  } anon_;
  uint32_t private2_;
  void *private3_;
} wasmtime_component_func_t;

#define WASMTIME_COMPONENT_RESULT 19
typedef struct wasmtime_component_val_t {
  uint8_t kind;
  union {
    struct {
      bool is_ok;
      void *val;
    } result;
    uint64_t opaque_[3];
  } of;
} wasmtime_component_val_t;

#if UINTPTR_MAX == 0xffffffffffffffffu
_Static_assert(sizeof(wasmtime_component_instance_t) == 16, "wasmtime_component_instance_t layout");
_Static_assert(sizeof(wasmtime_component_func_t) == 32, "wasmtime_component_func_t layout");
_Static_assert(sizeof(wasmtime_component_val_t) == 32, "wasmtime_component_val_t layout");
#endif

TS_WT_API wasmtime_error_t *wasmtime_component_new(wasm_engine_t *engine, const uint8_t *buf, size_t len, wasmtime_component_t **component_out);
TS_WT_API wasmtime_error_t *wasmtime_component_serialize(wasmtime_component_t *component, wasm_byte_vec_t *ret);
TS_WT_API wasmtime_error_t *wasmtime_component_deserialize_file(wasm_engine_t *engine, const char *path, wasmtime_component_t **component_out);
TS_WT_API void wasmtime_component_delete(wasmtime_component_t *component);
TS_WT_API wasmtime_component_export_index_t *wasmtime_component_get_export_index(wasmtime_component_t *component, wasmtime_component_export_index_t *instance_export_index, const char *name, size_t name_len);
TS_WT_API void wasmtime_component_export_index_delete(wasmtime_component_export_index_t *export_index);
TS_WT_API wasmtime_component_linker_t *wasmtime_component_linker_new(wasm_engine_t *engine);
TS_WT_API void wasmtime_component_linker_delete(wasmtime_component_linker_t *linker);
TS_WT_API wasmtime_error_t *wasmtime_component_linker_add_wasip2(wasmtime_component_linker_t *linker);
TS_WT_API wasmtime_error_t *wasmtime_component_linker_instantiate(wasmtime_component_linker_t *linker, wasmtime_context_t *context, wasmtime_component_t *component, wasmtime_component_instance_t *instance_out);
TS_WT_API bool wasmtime_component_instance_get_func(wasmtime_component_instance_t *instance, wasmtime_context_t *context, wasmtime_component_export_index_t *export_index, wasmtime_component_func_t *func_out);
TS_WT_API wasmtime_error_t *wasmtime_component_func_call(wasmtime_component_func_t *func, wasmtime_context_t *context, wasmtime_component_val_t *args, size_t args_size, wasmtime_component_val_t *results, size_t results_size);
TS_WT_API void wasmtime_component_val_delete(wasmtime_component_val_t *value);

/* clang-format on */
#endif
