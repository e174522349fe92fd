#include "ts_version.h"
#include "ts_engine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ts_component.h"
#include "ts_log.h"
#include "ts_metrics.h"
#include "ts_sha256.h"

static void flatten(char *s) {
  for (; *s; s++)
    if (*s == '\n' || *s == '\r' || *s == '\t') *s = ' ';
}

static void vec_text(wasm_byte_vec_t *v, char *buf, size_t n) {
  size_t k = v->size < n - 1 ? v->size : n - 1;
  if (k && v->data[v->size - 1] == 0 && k == v->size) k--;
  memcpy(buf, v->data, k);
  buf[k] = 0;
  flatten(buf);
}

void ts_wt_error_text(wasmtime_error_t *err, char *buf, size_t n) {
  wasm_name_t msg = {0, NULL};
  wasmtime_error_message(err, &msg);
  vec_text(&msg, buf, n);
  wasm_byte_vec_delete(&msg);
  wasmtime_error_delete(err);
}

static void trap_text(wasm_trap_t *trap, char *buf, size_t n) {
  wasm_message_t msg = {0, NULL};
  wasm_trap_message(trap, &msg);
  vec_text(&msg, buf, n);
  wasm_byte_vec_delete(&msg);
}

typedef struct {
  ts_buf *buf;
  uint64_t max;
  int *truncated;
} out_sink;

/* Wasmtime's WASI functions the bridge passes on (index into run_ctx.bridge). */
enum { BRIDGE_FD_WRITE, BRIDGE_FD_FDSTAT_GET, BRIDGE_FD_CLOSE, BRIDGE_FD_RENUMBER, BRIDGE_N };

/* What one request's store carries: where the guest's output goes, and the
 * request's deadline for host calls that wait (poll_oneoff). */
typedef struct {
  out_sink out;
  struct ts_app_log *log; /* guest stderr */
  int exited;             /* the guest called proc_exit(exit_status) */
  uint32_t exit_status;
  uint64_t stdin_len;
  uint64_t deadline_ns; /* CLOCK_MONOTONIC */
  int deadline_hit;     /* a host call stopped at the deadline: the run is a timeout */
  /* Runs with preopened folders only (see "the WASI bridge" below). */
  const ts_engine *engine;
  unsigned stdio_moved;             /* bit fd: fd 0-2 was closed or renumbered, Wasmtime's now */
  int bridge_ready;                 /* the bridge instance exists in this store */
  wasmtime_func_t bridge[BRIDGE_N]; /* its exports */
} run_ctx;

static void sink_append(out_sink *s, const void *p, size_t n) {
  /* Over the cap the bytes are accepted and dropped (an error return would
   * make many guests trap mid-write); the request becomes a 500. */
  if (*s->truncated || s->buf->n + n > s->max) {
    *s->truncated = 1;
    return;
  }
  if (ts_buf_append(s->buf, p, n)) *s->truncated = 1;
}

#define WASI_ESUCCESS 0
#define WASI_EBADF 8
#define WASI_EINVAL 28
#define WASI_ENOTSUP 58

/* The calling instance's exported linear memory: WASI passes pointers into it. */
static int guest_memory(wasmtime_caller_t *caller, wasmtime_extern_t *mem) {
  return wasmtime_caller_export_get(caller, "memory", 6, mem) && mem->kind == WASMTIME_EXTERN_MEMORY;
}

static size_t no_memory_trap(const char *fn) {
  char msg[96];
  int n = snprintf(msg, sizeof msg, "%s: the module exports no memory", fn);
  return (size_t)(uintptr_t)wasmtime_trap_new(msg, (size_t)n); /* the trap keeps a copy */
}

static size_t pointer_trap(void) {
  static const char msg[] = "fd_write: pointer out of bounds";
  return (size_t)(uintptr_t)wasmtime_trap_new(msg, sizeof msg - 1);
}

/* wasi_snapshot_preview1.fd_write(fd, iovs, iovs_len, nwritten) -> errno, our own.
 *
 * Why: Wasmtime's WASI hands every write to a custom stdout to its tokio
 * runtime and waits for another thread; for a small guest that round trip
 * was most of the request (bench/server_bench.py: ~10k → ~20k rps). A
 * WAGI guest without preopened folders has no files or sockets, so fds 1
 * (the response) and 2 (the app log) are its only writable descriptors
 * (guests with folders: see the WASI bridge below). As with Wasmtime's
 * WASI, any other fd is EBADF and a pointer outside memory traps; unlike it,
 * all the vectors are written at once (it writes the first one only, which
 * WASI allows: a short write). stdio_write is the part for fds 1 and 2. */
static size_t stdio_write(wasmtime_caller_t *caller, wasmtime_val_raw_t *args) {
  uint32_t fd = (uint32_t)args[0].i32, iovs = (uint32_t)args[1].i32, iovs_len = (uint32_t)args[2].i32;
  uint32_t nwritten_at = (uint32_t)args[3].i32;
  wasmtime_context_t *cx = wasmtime_caller_context(caller);
  run_ctx *rc = wasmtime_context_get_data(cx);
  wasmtime_extern_t mem;
  if (!rc || !guest_memory(caller, &mem)) return no_memory_trap("fd_write");
  uint8_t *base = wasmtime_memory_data(cx, &mem.of.memory);
  uint64_t size = wasmtime_memory_data_size(cx, &mem.of.memory);
  if ((uint64_t)iovs + (uint64_t)iovs_len * 8 > size || (uint64_t)nwritten_at + 4 > size) return pointer_trap();
  uint32_t total = 0;
  for (uint32_t i = 0; i < iovs_len; i++) { /* check every vector before writing any */
    uint32_t p, len;
    memcpy(&p, base + iovs + 8 * i, 4);
    memcpy(&len, base + iovs + 8 * i + 4, 4);
    if ((uint64_t)p + len > size || (uint64_t)total + len > UINT32_MAX) return pointer_trap();
    total += len;
  }
  for (uint32_t i = 0; i < iovs_len; i++) {
    uint32_t p, len;
    memcpy(&p, base + iovs + 8 * i, 4);
    memcpy(&len, base + iovs + 8 * i + 4, 4);
    if (!len) continue;
    if (fd == 1) sink_append(&rc->out, base + p, len);
    else ts_log_app_write(rc->log, base + p, len);
  }
  memcpy(base + nwritten_at, &total, 4); /* wasm memory is little-endian, like our targets */
  args[0].i32 = WASI_ESUCCESS;
  return 0;
}

static size_t fd_write_cb(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *args, size_t n) {
  (void)env;
  (void)n;
  uint32_t fd = (uint32_t)args[0].i32;
  if (fd != 1 && fd != 2) {
    args[0].i32 = WASI_EBADF;
    return 0;
  }
  return stdio_write(caller, args);
}

/* wasi_snapshot_preview1.fd_fdstat_get(fd, buf) -> errno, our own, for the
 * same reason as fd_write (wasi-libc asks it for stdout at start-up). The
 * answers are what Wasmtime's WASI gives for our stdio: file type unknown, no
 * flags, rights fd_read (stdin) or fd_write (stdout, stderr); else EBADF. */
static size_t stdio_fdstat(wasmtime_caller_t *caller, wasmtime_val_raw_t *args) {
  uint32_t fd = (uint32_t)args[0].i32, at = (uint32_t)args[1].i32;
  wasmtime_context_t *cx = wasmtime_caller_context(caller);
  wasmtime_extern_t mem;
  if (!guest_memory(caller, &mem)) return no_memory_trap("fd_fdstat_get");
  uint8_t *base = wasmtime_memory_data(cx, &mem.of.memory);
  if ((uint64_t)at + 24 > wasmtime_memory_data_size(cx, &mem.of.memory)) return pointer_trap();
  uint64_t rights = fd == 0 ? 0x2 /* fd_read */ : 0x40 /* fd_write */;
  memset(base + at, 0, 24); /* filetype 0 (unknown) at 0, flags 0 at 2 */
  memcpy(base + at + 8, &rights, 8);
  memcpy(base + at + 16, &rights, 8);
  args[0].i32 = WASI_ESUCCESS;
  return 0;
}

static size_t fd_fdstat_get_cb(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *args, size_t n) {
  (void)env;
  (void)n;
  if ((uint32_t)args[0].i32 > 2) {
    args[0].i32 = WASI_EBADF;
    return 0;
  }
  return stdio_fdstat(caller, args);
}

/* ------------------------------------------------------ the WASI bridge --- *
 *
 * A guest with preopened folders has files of its own (fds 3 and up), and
 * those must behave exactly as Wasmtime's WASI says; but Wasmtime's fd_write
 * to our stdout is the slow round trip described at fd_write_cb. So such
 * guests link against our fd_write/fd_fdstat_get too, which keep fds 1 and 2
 * (and fdstat of 0-2) and pass every other call on to Wasmtime's function.
 *
 * Passing on cannot be a plain wasmtime_func_call of Wasmtime's function:
 * its WASI finds the guest's memory as the *calling instance's* "memory"
 * export, and a call from the host has no calling instance ("missing required
 * memory export"). So the call goes through a small module (BRIDGE_WAT),
 * instantiated in the request's store the first time it is needed, that
 * imports the guest's memory, exports it as "memory" and calls Wasmtime's
 * functions from wasm: to Wasmtime the bridge is the caller, and its memory
 * the guest's. Errno, pointer checks and traps are then Wasmtime's own.
 *
 * fd_close and fd_renumber pass on too, and note when they touch fds 0-2
 * (freopen(stdout) renumbers a file onto fd 1): from then on that fd is
 * Wasmtime's entirely, so it reaches the file (or the response through
 * Wasmtime's custom stdout, which stays configured), as it would without us. */

static const char BRIDGE_WAT[] =
    "(module\n"
    "  (import \"guest\" \"memory\" (memory 0))\n"
    "  (import \"wasi_snapshot_preview1\" \"fd_write\" (func $w (param i32 i32 i32 i32) (result i32)))\n"
    "  (import \"wasi_snapshot_preview1\" \"fd_fdstat_get\" (func $s (param i32 i32) (result i32)))\n"
    "  (import \"wasi_snapshot_preview1\" \"fd_close\" (func $c (param i32) (result i32)))\n"
    "  (import \"wasi_snapshot_preview1\" \"fd_renumber\" (func $r (param i32 i32) (result i32)))\n"
    "  (export \"memory\" (memory 0))\n"
    "  (func (export \"fd_write\") (param i32 i32 i32 i32) (result i32)\n"
    "    (call $w (local.get 0) (local.get 1) (local.get 2) (local.get 3)))\n"
    "  (func (export \"fd_fdstat_get\") (param i32 i32) (result i32) (call $s (local.get 0) (local.get 1)))\n"
    "  (func (export \"fd_close\") (param i32) (result i32) (call $c (local.get 0)))\n"
    "  (func (export \"fd_renumber\") (param i32 i32) (result i32) (call $r (local.get 0) (local.get 1))))\n";

static const char *const BRIDGE_NAMES[BRIDGE_N] = {"fd_write", "fd_fdstat_get", "fd_close", "fd_renumber"};

static size_t trap_from_error(wasmtime_error_t *werr) {
  char msg[512];
  ts_wt_error_text(werr, msg, sizeof msg);
  return (size_t)(uintptr_t)wasmtime_trap_new(msg, strlen(msg));
}

static size_t bridge_open(wasmtime_caller_t *caller, run_ctx *rc, const char *fn) {
  wasmtime_context_t *cx = wasmtime_caller_context(caller);
  wasmtime_extern_t imports[1 + BRIDGE_N];
  if (!guest_memory(caller, &imports[0])) return no_memory_trap(fn);
  for (int i = 0; i < BRIDGE_N; i++)
    if (!wasmtime_linker_get(rc->engine->linker_wasi, cx, "wasi_snapshot_preview1", 22, BRIDGE_NAMES[i],
                             strlen(BRIDGE_NAMES[i]), &imports[1 + i])) {
      static const char msg[] = "WASI bridge: Wasmtime's WASI function is missing";
      return (size_t)(uintptr_t)wasmtime_trap_new(msg, sizeof msg - 1);
    }
  wasmtime_instance_t inst;
  wasm_trap_t *trap = NULL;
  wasmtime_error_t *werr = wasmtime_instance_new(cx, rc->engine->wasi_bridge, imports, 1 + BRIDGE_N, &inst, &trap);
  if (werr) return trap_from_error(werr);
  if (trap) return (size_t)(uintptr_t)trap;
  for (int i = 0; i < BRIDGE_N; i++) {
    wasmtime_extern_t x;
    if (!wasmtime_instance_export_get(cx, &inst, BRIDGE_NAMES[i], strlen(BRIDGE_NAMES[i]), &x) ||
        x.kind != WASMTIME_EXTERN_FUNC) {
      static const char msg[] = "WASI bridge: export missing";
      return (size_t)(uintptr_t)wasmtime_trap_new(msg, sizeof msg - 1);
    }
    rc->bridge[i] = x.of.func;
  }
  rc->bridge_ready = 1;
  return 0;
}

/* Call Wasmtime's function `which` with the guest's raw arguments (results in place). */
static size_t bridge_call(wasmtime_caller_t *caller, int which, wasmtime_val_raw_t *args, size_t n) {
  wasmtime_context_t *cx = wasmtime_caller_context(caller);
  run_ctx *rc = wasmtime_context_get_data(cx);
  if (!rc || !rc->engine) {
    static const char msg[] = "WASI bridge: no request context";
    return (size_t)(uintptr_t)wasmtime_trap_new(msg, sizeof msg - 1);
  }
  if (!rc->bridge_ready) {
    size_t t = bridge_open(caller, rc, BRIDGE_NAMES[which]);
    if (t) return t;
  }
  wasm_trap_t *trap = NULL;
  wasmtime_error_t *werr = wasmtime_func_call_unchecked(cx, &rc->bridge[which], args, n, &trap);
  if (werr) return trap_from_error(werr);
  return (size_t)(uintptr_t)trap; /* Wasmtime's trap (bad pointer, deadline) goes on unchanged */
}

static int stdio_ours(wasmtime_caller_t *caller, uint32_t fd) {
  run_ctx *rc = wasmtime_context_get_data(wasmtime_caller_context(caller));
  return fd <= 2 && rc && !(rc->stdio_moved & (1u << fd));
}

static size_t files_fd_write_cb(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *args, size_t n) {
  (void)env;
  uint32_t fd = (uint32_t)args[0].i32;
  if ((fd == 1 || fd == 2) && stdio_ours(caller, fd)) return stdio_write(caller, args);
  return bridge_call(caller, BRIDGE_FD_WRITE, args, n);
}

static size_t files_fd_fdstat_get_cb(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *args, size_t n) {
  (void)env;
  if (stdio_ours(caller, (uint32_t)args[0].i32)) return stdio_fdstat(caller, args);
  return bridge_call(caller, BRIDGE_FD_FDSTAT_GET, args, n);
}

static void note_moved(wasmtime_caller_t *caller, uint32_t fd) {
  run_ctx *rc = wasmtime_context_get_data(wasmtime_caller_context(caller));
  if (rc && fd <= 2) rc->stdio_moved |= 1u << fd;
}

static size_t files_fd_close_cb(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *args, size_t n) {
  (void)env;
  uint32_t fd = (uint32_t)args[0].i32;
  size_t t = bridge_call(caller, BRIDGE_FD_CLOSE, args, n);
  if (!t && args[0].i32 == WASI_ESUCCESS) note_moved(caller, fd);
  return t;
}

static size_t files_fd_renumber_cb(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *args, size_t n) {
  (void)env;
  uint32_t from = (uint32_t)args[0].i32, to = (uint32_t)args[1].i32;
  size_t t = bridge_call(caller, BRIDGE_FD_RENUMBER, args, n);
  if (!t && args[0].i32 == WASI_ESUCCESS) {
    note_moved(caller, from);
    note_moved(caller, to);
  }
  return t;
}

/* wasi_snapshot_preview1.proc_exit(rval), our own: Wasmtime's refuses a
 * status of 126 or more with a generic error, so such exits were logged
 * without their code. Every status is recorded here and
 * the guest unwinds with a trap that ts_engine_run reads as an exit. */
static size_t proc_exit_cb(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *args, size_t n) {
  (void)env;
  (void)n;
  run_ctx *rc = wasmtime_context_get_data(wasmtime_caller_context(caller));
  if (rc) {
    rc->exited = 1;
    rc->exit_status = (uint32_t)args[0].i32;
  }
  static const char msg[] = "proc_exit";
  return (size_t)(uintptr_t)wasmtime_trap_new(msg, sizeof msg - 1);
}

static wasmtime_error_t *define_proc_exit(wasmtime_linker_t *linker) {
  wasm_valtype_t *p[1] = {wasm_valtype_new(WASM_I32)};
  wasm_valtype_vec_t params, results;
  wasm_valtype_vec_new(&params, 1, p);
  wasm_valtype_vec_new(&results, 0, NULL);
  wasm_functype_t *ty = wasm_functype_new(&params, &results);
  wasmtime_error_t *err = wasmtime_linker_define_func_unchecked(linker, "wasi_snapshot_preview1", 22, "proc_exit", 9,
                                                                ty, proc_exit_cb, NULL, NULL);
  wasm_functype_delete(ty);
  return err;
}

/* ------------------------------------------------------------ poll_oneoff --- */

/* WASI p1 layouts (wasm32, little-endian), from the witx spec:
 * subscription (48 B): userdata u64 @0, tag u8 @8, then the union @16:
 *   clock: id u32 @16, timeout u64 @24, precision u64 @32, flags u16 @40
 *   fd_read / fd_write: fd u32 @16
 * event (32 B): userdata u64 @0, error u16 @8, type u8 @10,
 *   fd_readwrite: nbytes u64 @16, flags u16 @24 */
#define SUB_SIZE 48
#define EVENT_SIZE 32
#define EVENTTYPE_CLOCK 0
#define EVENTTYPE_FD_READ 1
#define EVENTTYPE_FD_WRITE 2
#define SUBCLOCK_ABSTIME 1
#define CLOCK_ID_REALTIME 0
#define CLOCK_ID_MONOTONIC 1
#define NO_DUE UINT64_MAX

static uint64_t clock_ns(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t add_sat(uint64_t a, uint64_t b) { return b > UINT64_MAX - a ? UINT64_MAX : a + b; }

/* The guest's monotonic clock is the host's minus this (set once at engine
 * init): it counts from server start rather than exposing the host's uptime,
 * and poll_oneoff can turn a guest's absolute monotonic time back into the
 * host's. */
static uint64_t g_mono_base;

/* wasi_snapshot_preview1.clock_time_get(id, precision, time) -> errno, our own.
 *
 * Why: an absolute monotonic wait in poll_oneoff is a time on the guest's
 * monotonic clock, so that clock must be ours too (Wasmtime's has its own
 * origin). Realtime is the host's; the CPU-time clocks give EBADF, as
 * Wasmtime's WASI does. */
static size_t clock_time_get_cb(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *args, size_t n) {
  (void)env;
  (void)n;
  uint32_t id = (uint32_t)args[0].i32, at = (uint32_t)args[2].i32;
  uint64_t t;
  if (id == CLOCK_ID_REALTIME) t = clock_ns(CLOCK_REALTIME);
  else if (id == CLOCK_ID_MONOTONIC) t = clock_ns(CLOCK_MONOTONIC) - g_mono_base;
  else {
    args[0].i32 = id <= 3 ? WASI_EBADF : WASI_EINVAL;
    return 0;
  }
  wasmtime_context_t *cx = wasmtime_caller_context(caller);
  wasmtime_extern_t mem;
  if (!guest_memory(caller, &mem)) return no_memory_trap("clock_time_get");
  uint8_t *base = wasmtime_memory_data(cx, &mem.of.memory);
  if ((uint64_t)at + 8 > wasmtime_memory_data_size(cx, &mem.of.memory)) {
    static const char msg[] = "clock_time_get: pointer out of bounds";
    return (size_t)(uintptr_t)wasmtime_trap_new(msg, sizeof msg - 1);
  }
  memcpy(base + at, &t, 8);
  args[0].i32 = WASI_ESUCCESS;
  return 0;
}

/* One subscription, decided against one snapshot of the clocks: either an
 * event now (*error, *nbytes) or a monotonic due time (*due). -1: bad tag. */
static int sub_state(const run_ctx *rc, const uint8_t *sub, uint64_t mono, uint64_t real, uint64_t *due,
                     uint16_t *error, uint64_t *nbytes) {
  uint8_t tag = sub[8];
  *due = NO_DUE;
  *error = WASI_ESUCCESS;
  *nbytes = 0;
  if (tag == EVENTTYPE_CLOCK) {
    uint32_t id;
    uint64_t timeout;
    uint16_t flags;
    memcpy(&id, sub + 16, 4);
    memcpy(&timeout, sub + 24, 8);
    memcpy(&flags, sub + 40, 2);
    if (id != CLOCK_ID_REALTIME && id != CLOCK_ID_MONOTONIC) {
      /* the CPU-time clocks cannot be waited on in a meaningful way here */
      *error = id <= 3 ? WASI_ENOTSUP : WASI_EINVAL;
      return 0;
    }
    if (flags & SUBCLOCK_ABSTIME) { /* absolute time on that clock: wait for what is left of it */
      uint64_t now = id == CLOCK_ID_REALTIME ? real : mono - g_mono_base;
      *due = add_sat(mono, timeout > now ? timeout - now : 0);
    } else {
      *due = add_sat(mono, timeout);
    }
    return 0;
  }
  if (tag != EVENTTYPE_FD_READ && tag != EVENTTYPE_FD_WRITE) return -1;
  /* A WAGI guest's only descriptors are stdin (the request body, in memory)
   * and stdout/stderr (taken without blocking by fd_write): always ready. */
  uint32_t fd;
  memcpy(&fd, sub + 16, 4);
  if (tag == EVENTTYPE_FD_READ && fd == 0) *nbytes = rc->stdin_len; /* at most this much is left */
  else if (tag == EVENTTYPE_FD_WRITE && fd == 1)
    *nbytes = rc->out.buf->n < rc->out.max ? rc->out.max - rc->out.buf->n : 0;
  else if (tag == EVENTTYPE_FD_WRITE && fd == 2) *nbytes = 65536;
  else *error = WASI_EBADF;
  return 0;
}

/* Sleep until `until` (CLOCK_MONOTONIC ns). */
static void sleep_until(uint64_t until) {
  struct timespec ts = {(time_t)(until / 1000000000u), (long)(until % 1000000000u)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}

/* wasi_snapshot_preview1.poll_oneoff(in, out, nsubscriptions, nevents) -> errno, our own.
 *
 * Why: it is the one WASI p1 call that blocks for a WAGI guest (sleep(),
 * nanosleep, poll with a timeout); the others answer at once (stdin is in
 * memory, there are no sockets or preopens). Wasmtime's version waits in
 * its runtime where the epoch deadline cannot interrupt it, so a guest
 * sleeping 20 s held its thread and got its 504 after 20 s. Ours waits at
 * most until the request's deadline, then traps; the run is then a timeout
 * (504) exactly like an epoch interrupt.
 *
 * Semantics (WASI p1): returns once at least one subscription has an event,
 * writing one event per such subscription in order. fd subscriptions are
 * ready at once (stdin: nbytes = the body length, an upper bound; stdout:
 * room left under max-output; anything else: the event carries EBADF).
 * Clock subscriptions on the realtime or monotonic clock, relative or
 * absolute (subclockflags bit 0), fire when due; precision is ignored; the
 * CPU-time clocks give an event with ENOTSUP. No subscriptions: EINVAL. */
static size_t poll_oneoff_cb(void *env, wasmtime_caller_t *caller, wasmtime_val_raw_t *args, size_t n) {
  (void)env;
  (void)n;
  uint32_t in = (uint32_t)args[0].i32, out = (uint32_t)args[1].i32, nsubs = (uint32_t)args[2].i32;
  uint32_t nevents_at = (uint32_t)args[3].i32;
  wasmtime_context_t *cx = wasmtime_caller_context(caller);
  run_ctx *rc = wasmtime_context_get_data(cx);
  wasmtime_extern_t mem;
  if (!rc || !guest_memory(caller, &mem)) return no_memory_trap("poll_oneoff");
  if (!nsubs) {
    args[0].i32 = WASI_EINVAL;
    return 0;
  }
  uint8_t *base = wasmtime_memory_data(cx, &mem.of.memory);
  uint64_t size = wasmtime_memory_data_size(cx, &mem.of.memory);
  if ((uint64_t)in + (uint64_t)nsubs * SUB_SIZE > size || (uint64_t)out + (uint64_t)nsubs * EVENT_SIZE > size ||
      (uint64_t)nevents_at + 4 > size) {
    static const char msg[] = "poll_oneoff: pointer out of bounds";
    return (size_t)(uintptr_t)wasmtime_trap_new(msg, sizeof msg - 1);
  }
  uint64_t mono = clock_ns(CLOCK_MONOTONIC), real = clock_ns(CLOCK_REALTIME);
  uint64_t earliest = NO_DUE, due, nbytes;
  uint16_t error;
  int immediate = 0;
  for (uint32_t i = 0; i < nsubs; i++) {
    if (sub_state(rc, base + in + (uint64_t)i * SUB_SIZE, mono, real, &due, &error, &nbytes)) {
      args[0].i32 = WASI_EINVAL;
      return 0;
    }
    if (due == NO_DUE) immediate = 1;
    else if (due < earliest) earliest = due;
  }
  uint64_t now = mono;
  if (!immediate && earliest > mono) {
    if (earliest > rc->deadline_ns) {
      /* The request ends first: wait for its deadline, not the guest's. */
      if (rc->deadline_ns > mono) sleep_until(rc->deadline_ns);
      rc->deadline_hit = 1;
      static const char msg[] = "request deadline reached in poll_oneoff";
      return (size_t)(uintptr_t)wasmtime_trap_new(msg, sizeof msg - 1);
    }
    sleep_until(earliest);
    now = earliest;
  }
  uint32_t k = 0;
  for (uint32_t i = 0; i < nsubs; i++) {
    const uint8_t *sub = base + in + (uint64_t)i * SUB_SIZE;
    sub_state(rc, sub, mono, real, &due, &error, &nbytes);
    if (due != NO_DUE && due > now) continue;
    uint8_t ev[EVENT_SIZE] = {0};
    memcpy(ev, sub, 8); /* userdata */
    memcpy(ev + 8, &error, 2);
    ev[10] = sub[8]; /* the subscription's type */
    if (sub[8] != EVENTTYPE_CLOCK) memcpy(ev + 16, &nbytes, 8);
    /* events are written behind the subscriptions already read, so in == out works */
    memcpy(base + out + (uint64_t)k * EVENT_SIZE, ev, EVENT_SIZE);
    k++;
  }
  memcpy(base + nevents_at, &k, 4);
  args[0].i32 = WASI_ESUCCESS;
  return 0;
}

/* A WASI function returning an errno (i32); sig: one letter per param,
 * 'i' = i32, 'I' = i64. */
static wasmtime_error_t *define_i32_func(wasmtime_linker_t *linker, const char *name, const char *sig,
                                         ts_wt_unchecked_cb cb) {
  wasm_valtype_t *p[8], *r[1];
  int nparams = (int)strlen(sig);
  for (int i = 0; i < nparams && i < 8; i++) p[i] = wasm_valtype_new(sig[i] == 'I' ? WASM_I64 : WASM_I32);
  r[0] = wasm_valtype_new(WASM_I32);
  wasm_valtype_vec_t params, results;
  wasm_valtype_vec_new(&params, (size_t)nparams, p);
  wasm_valtype_vec_new(&results, 1, r);
  wasm_functype_t *ty = wasm_functype_new(&params, &results); /* takes both vectors */
  wasmtime_error_t *err = wasmtime_linker_define_func_unchecked(linker, "wasi_snapshot_preview1", 22, name,
                                                                strlen(name), ty, cb, NULL, NULL);
  wasm_functype_delete(ty);
  return err;
}

/* Replace WASI's stdio hot paths and its one blocking call with ours (after
 * wasmtime_linker_define_wasi). */
static wasmtime_error_t *define_stdio(wasmtime_linker_t *linker) {
  wasmtime_linker_allow_shadowing(linker, true);
  wasmtime_error_t *err = define_i32_func(linker, "fd_write", "iiii", fd_write_cb);
  if (!err) err = define_i32_func(linker, "fd_fdstat_get", "ii", fd_fdstat_get_cb);
  if (!err) err = define_i32_func(linker, "poll_oneoff", "iiii", poll_oneoff_cb);
  if (!err) err = define_i32_func(linker, "clock_time_get", "iIi", clock_time_get_cb);
  if (!err) err = define_proc_exit(linker);
  wasmtime_linker_allow_shadowing(linker, false);
  return err;
}

/* For guests with preopened folders: stdio ours, the rest through the bridge. */
static wasmtime_error_t *define_files_overrides(wasmtime_linker_t *linker) {
  wasmtime_linker_allow_shadowing(linker, true);
  wasmtime_error_t *err = define_i32_func(linker, "fd_write", "iiii", files_fd_write_cb);
  if (!err) err = define_i32_func(linker, "fd_fdstat_get", "ii", files_fd_fdstat_get_cb);
  if (!err) err = define_i32_func(linker, "fd_close", "i", files_fd_close_cb);
  if (!err) err = define_i32_func(linker, "fd_renumber", "ii", files_fd_renumber_cb);
  if (!err) err = define_i32_func(linker, "poll_oneoff", "iiii", poll_oneoff_cb);
  if (!err) err = define_i32_func(linker, "clock_time_get", "iIi", clock_time_get_cb);
  if (!err) err = define_proc_exit(linker);
  wasmtime_linker_allow_shadowing(linker, false);
  return err;
}

/* Instances that can run at once: one per guest thread (guests run only
 * there), plus compile-time validation and slack. */
static uint32_t pool_slots(const ts_config *cfg) {
  int n = cfg->guest_threads > 0 ? cfg->guest_threads : (cfg->workers * 2 < 4 ? 4 : cfg->workers * 2);
  return (uint32_t)n + 2;
}

/* A component instance takes several pool entries: one adapted from a
 * preview 1 module has 4 core instances (the module, the WASI adapter and two
 * glue modules), 1 linear memory and 2 tables; componentize-py's has 14 core
 * modules. Each guest slot gets room for one such component (a core module
 * uses one of each). Core instance and table entries cost little; memories
 * reserve address space, so fewer of them. */
#define CORE_PER_SLOT 16u
#define MEMORIES_PER_SLOT 4u
#define TABLES_PER_SLOT 16u

#define RESERVATION_DEFAULT (4ull << 30) /* what Wasmtime reserves per memory on 64-bit */
#define GUARD_DEFAULT (32ull << 20)

/* Pooling reserves every slot's address space up front. On 39-bit VA kernels
 * (Raspberry Pi) or under some emulators that fails (or aborts inside the
 * engine), so probe with a PROT_NONE mapping of that size first. */
static int address_space_allows(uint64_t bytes) {
  void *p = mmap(NULL, (size_t)bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return 0;
  munmap(p, (size_t)bytes);
  return 1;
}

#if defined(__x86_64__)
#define TS_ARCH "x86_64"
#elif defined(__aarch64__)
#define TS_ARCH "aarch64"
#else
#define TS_ARCH "unknown"
#endif

void ts_engine_plan(const ts_config *cfg, ts_engine_settings *s) {
  memset(s, 0, sizeof *s);
  s->epoch_interruption = 1;
  s->opt_speed = 1;
  s->wasm_threads = 0;
  s->memory_bytes = cfg->memory_mb << 20;
  s->keep_resident = cfg->keep_resident; /* server.conf keep-resident, 64 KiB by default */
  s->slots = pool_slots(cfg);
  uint64_t need = (uint64_t)s->slots * MEMORIES_PER_SLOT * (RESERVATION_DEFAULT + 2 * GUARD_DEFAULT) * 2;
  if (cfg->pooling == TS_POOLING_ON) s->pooling = 1;
  else if (cfg->pooling == TS_POOLING_AUTO) s->pooling = address_space_allows(need);
  char base[96];
  snprintf(base, sizeof base, "wasmtime=%s;epoch=%d;opt=%s;threads=%d", TS_WASMTIME_VERSION, s->epoch_interruption,
           s->opt_speed ? "speed" : "none", s->wasm_threads);
  if (s->pooling) {
    snprintf(s->id, sizeof s->id, "%s;alloc=pooling", base);
  } else {
    /* Small reservations: memories start small and move when they grow,
     * bounds checks are explicit. Costs a little speed, saves address space. */
    s->reservation = s->memory_bytes < (64ull << 20) ? (64ull << 20) : s->memory_bytes;
    if (cfg->pooling == TS_POOLING_OFF && address_space_allows(need)) s->reservation = RESERVATION_DEFAULT;
    s->guard = 64 << 10;
    s->growth = 1 << 20;
    snprintf(s->id, sizeof s->id, "%s;alloc=ondemand;reserve=%llu;guard=%llu", base, (unsigned long long)s->reservation,
             (unsigned long long)s->guard);
  }
  char hex[65];
  ts_sha256_hex(s->id, strlen(s->id), hex);
  memcpy(s->hash, hex, 16);
  s->hash[16] = 0;
}

/* Keys under "config" name Wasmtime Config setters (wasmtime-py spelling);
 * deploy refuses to precompile when it meets a key it cannot reproduce, so a
 * setting added here without the Python side means "compile on the box". */
void ts_engine_settings_json(const ts_engine_settings *s, const char *cache_dir, ts_buf *b) {
  ts_buf_printf(b, "{\"format\":1,\"wasmtime\":\"%s\",\"arch\":\"%s\",\"settings_id\":", TS_WASMTIME_VERSION, TS_ARCH);
  ts_buf_json_str(b, s->id);
  ts_buf_printf(b, ",\"settings_hash\":\"%s\",\"cache_dir\":", s->hash);
  if (cache_dir && cache_dir[0]) ts_buf_json_str(b, cache_dir);
  else ts_buf_puts(b, "null");
  ts_buf_printf(b, ",\"config\":{\"epoch_interruption\":%s,\"cranelift_opt_level\":\"%s\",\"wasm_threads\":%s",
                s->epoch_interruption ? "true" : "false", s->opt_speed ? "speed" : "none",
                s->wasm_threads ? "true" : "false");
  if (s->pooling) {
    ts_buf_printf(b,
                  ",\"pooling\":{\"total_core_instances\":%u,\"total_memories\":%u,\"total_tables\":%u,"
                  "\"total_stacks\":%u,\"total_gc_heaps\":%u,\"max_memory_size\":%llu,"
                  "\"max_unused_warm_slots\":%u}",
                  s->slots * CORE_PER_SLOT, s->slots * MEMORIES_PER_SLOT, s->slots * TABLES_PER_SLOT, s->slots,
                  s->slots, (unsigned long long)s->memory_bytes, s->slots);
  } else {
    ts_buf_printf(b, ",\"memory_reservation\":%llu,\"memory_guard_size\":%llu,\"memory_reservation_for_growth\":%llu",
                  (unsigned long long)s->reservation, (unsigned long long)s->guard, (unsigned long long)s->growth);
  }
  ts_buf_puts(b, "}");
  /* Applied too, but no part of compiled code: outside "config", which deploy reproduces. */
  if (s->pooling)
    ts_buf_printf(b, ",\"runtime\":{\"linear_memory_keep_resident\":%llu}", (unsigned long long)s->keep_resident);
  ts_buf_puts(b, "}");
}

int ts_engine_init(ts_engine *e, const ts_config *cfg, char *err, size_t errlen) {
  memset(e, 0, sizeof *e);
  e->timeout_ms = cfg->timeout_ms;
  if (!g_mono_base) g_mono_base = clock_ns(CLOCK_MONOTONIC) - 1; /* guest time starts at 1 ns */
  ts_strlcpy(e->cache_dir, cfg->cache, sizeof e->cache_dir);
  ts_engine_plan(cfg, &e->settings);
  const ts_engine_settings *s = &e->settings;
  e->memory_bytes = s->memory_bytes;
  int pooling = s->pooling;
  if (cfg->pooling == TS_POOLING_AUTO && !pooling)
    ts_log_warn(
        "address space too small for the pooling allocator (%llu GiB needed): using "
        "on-demand allocation with %llu MiB memory reservations",
        (unsigned long long)(((uint64_t)s->slots * MEMORIES_PER_SLOT * (RESERVATION_DEFAULT + 2 * GUARD_DEFAULT) * 2) >>
                             30),
        (unsigned long long)(s->reservation >> 20));

  wasm_config_t *c = wasm_config_new();
  if (!c) {
    snprintf(err, errlen, "wasmtime: cannot create engine config");
    return -1;
  }
  /* Only fields of the plan, so what is applied is what --engine-settings prints. */
  wasmtime_config_epoch_interruption_set(c, s->epoch_interruption);
  wasmtime_config_cranelift_opt_level_set(c, s->opt_speed ? WASMTIME_OPT_LEVEL_SPEED : WASMTIME_OPT_LEVEL_NONE);
  wasmtime_config_wasm_threads_set(c, s->wasm_threads);
  if (pooling) {
    wasmtime_pooling_allocation_config_t *pc = wasmtime_pooling_allocation_config_new();
    wasmtime_pooling_allocation_config_total_core_instances_set(pc, s->slots * CORE_PER_SLOT);
    wasmtime_pooling_allocation_config_total_memories_set(pc, s->slots * MEMORIES_PER_SLOT);
    wasmtime_pooling_allocation_config_total_tables_set(pc, s->slots * TABLES_PER_SLOT);
    wasmtime_pooling_allocation_config_total_stacks_set(pc, s->slots);
    wasmtime_pooling_allocation_config_total_gc_heaps_set(pc, s->slots);
    wasmtime_pooling_allocation_config_max_memory_size_set(pc, (size_t)s->memory_bytes);
    wasmtime_pooling_allocation_config_max_unused_warm_slots_set(pc, s->slots);
    /* Reset the first pages of a slot's memory with memset instead of
     * madvise: no page faults on the next instance and no TLB shootdown
     * across threads (bench/server_ab.py: trivial guest ~1.5x rps). */
    wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(pc, s->keep_resident);
    wasmtime_pooling_allocation_strategy_set(c, pc);
    wasmtime_pooling_allocation_config_delete(pc);
  } else {
    wasmtime_config_memory_reservation_set(c, s->reservation);
    wasmtime_config_memory_guard_size_set(c, s->guard);
    wasmtime_config_memory_reservation_for_growth_set(c, s->growth);
  }

  e->engine = wasm_engine_new_with_config(c); /* consumes c */
  if (!e->engine) {
    snprintf(err, errlen, "wasmtime: cannot create the engine (%s allocator)", pooling ? "pooling" : "on-demand");
    return -1;
  }
  e->pooling = pooling;
  e->linker = wasmtime_linker_new(e->engine);
  wasmtime_error_t *werr = wasmtime_linker_define_wasi(e->linker);
  if (werr) {
    char msg[512];
    ts_wt_error_text(werr, msg, sizeof msg);
    snprintf(err, errlen, "wasmtime: cannot define WASI: %s", msg);
    return -1;
  }
  werr = define_stdio(e->linker);
  if (werr) {
    char msg[512];
    ts_wt_error_text(werr, msg, sizeof msg);
    snprintf(err, errlen, "wasmtime: cannot define the stdio functions: %s", msg);
    return -1;
  }
  e->linker_files = wasmtime_linker_new(e->engine);
  werr = wasmtime_linker_define_wasi(e->linker_files);
  if (!werr) werr = define_files_overrides(e->linker_files);
  if (!werr) {
    e->linker_wasi = wasmtime_linker_new(e->engine);
    werr = wasmtime_linker_define_wasi(e->linker_wasi);
  }
  if (!werr) {
    wasm_byte_vec_t bin = {0, NULL};
    werr = wasmtime_wat2wasm(BRIDGE_WAT, sizeof BRIDGE_WAT - 1, &bin);
    if (!werr) werr = wasmtime_module_new(e->engine, bin.data, bin.size, &e->wasi_bridge);
    wasm_byte_vec_delete(&bin);
  }
  if (werr) {
    char msg[512];
    ts_wt_error_text(werr, msg, sizeof msg);
    snprintf(err, errlen, "wasmtime: cannot define WASI for preopened folders: %s", msg);
    return -1;
  }
  return ts_component_linker_init(e, err, errlen);
}

int ts_engine_prelink_files(ts_engine *e, wasmtime_module_t *module, wasmtime_instance_pre_t **pre, char *err,
                            size_t errlen) {
  wasmtime_error_t *werr = wasmtime_linker_instantiate_pre(e->linker_files, module, pre);
  if (werr) {
    char msg[512];
    ts_wt_error_text(werr, msg, sizeof msg);
    snprintf(err, errlen, "link failed: %s", msg);
    return -1;
  }
  return 0;
}

void ts_engine_free(ts_engine *e) {
  ts_component_linker_free(e);
  if (e->linker) wasmtime_linker_delete(e->linker);
  if (e->linker_files) wasmtime_linker_delete(e->linker_files);
  if (e->linker_wasi) wasmtime_linker_delete(e->linker_wasi);
  if (e->wasi_bridge) wasmtime_module_delete(e->wasi_bridge);
  e->linker_files = e->linker_wasi = NULL;
  e->wasi_bridge = NULL;
  if (e->engine) wasm_engine_delete(e->engine);
  e->linker = NULL;
  e->engine = NULL;
}

void ts_engine_tick(ts_engine *e) { wasmtime_engine_increment_epoch(e->engine); }

static void cache_path(const ts_engine *e, const char *sha, char *out, size_t n) {
  snprintf(out, n, "%s/%s-%s.cwasm", e->cache_dir, sha, e->settings.hash);
}

/* Compiled code of either kind: a core module or a component. */
typedef struct {
  wasmtime_module_t *module;
  wasmtime_component_t *component;
} compiled;

static void cache_store(const ts_engine *e, compiled m, const char *path) {
  wasm_byte_vec_t bytes = {0, NULL};
  wasmtime_error_t *werr =
      m.component ? wasmtime_component_serialize(m.component, &bytes) : wasmtime_module_serialize(m.module, &bytes);
  if (werr) {
    char msg[256];
    ts_wt_error_text(werr, msg, sizeof msg);
    ts_log_warn("cannot serialize module for the cache: %s", msg);
    return;
  }
  char tmp[TS_PATH_MAX + 64];
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
  mkdir(e->cache_dir, 0700);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int ok = fd >= 0;
  size_t off = 0;
  while (ok && off < bytes.size) {
    ssize_t w = write(fd, bytes.data + off, bytes.size - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) ok = 0;
    else off += (size_t)w;
  }
  if (fd >= 0 && close(fd)) ok = 0;
  if (ok && rename(tmp, path) == 0) {
    /* written atomically: a crash never leaves a half entry under the final name */
  } else {
    ts_log_warn("cannot write compiled module %s: %s", path, strerror(errno));
    unlink(tmp);
  }
  wasm_byte_vec_delete(&bytes);
}

const char *ts_load_source_name(int source) {
  return source == TS_LOAD_CACHE ? "from cache" : source == TS_LOAD_PRECOMPILED ? "precompiled" : "compiled";
}

/* NULL with the reason in why when Wasmtime refuses the file (another
 * version, other engine settings, CPU features the host lacks, damage). */
static int loaded(compiled m) { return m.module || m.component; }

static compiled deserialize(ts_engine *e, int component, const char *path, char *why, size_t n) {
  compiled m = {NULL, NULL};
  wasmtime_error_t *werr = component ? wasmtime_component_deserialize_file(e->engine, path, &m.component)
                                     : wasmtime_module_deserialize_file(e->engine, path, &m.module);
  if (werr) {
    ts_wt_error_text(werr, why, n);
    m.module = NULL;
    m.component = NULL;
  }
  return m;
}

static compiled try_precompiled(ts_engine *e, int component, const char *sha, const char *path) {
  char why[900];
  compiled m = deserialize(e, component, path, why, sizeof why);
  if (loaded(m)) {
    atomic_fetch_add(&g_metrics.precompiled_used_total, 1);
  } else {
    atomic_fetch_add(&g_metrics.precompiled_refused_total, 1);
    ts_log_warn("module %.12s: precompiled module refused: %s; compiled instead", sha, why);
  }
  return m;
}

int ts_engine_load(ts_engine *e, const uint8_t *wasm, size_t len, const char *sha, const char *precompiled,
                   wasmtime_module_t **module, wasmtime_instance_pre_t **pre, ts_component **component, int *source,
                   char *err, size_t errlen) {
  char own[TS_PATH_MAX + 128], shipped[TS_PATH_MAX + 128], msg[900];
  compiled m = {NULL, NULL};
  wasmtime_error_t *werr;
  int cache = e->cache_dir[0] != 0;
  int is_comp = ts_is_component(wasm, len);
  *source = TS_LOAD_COMPILED;
  *module = NULL;
  *pre = NULL;
  if (component) *component = NULL;
  if (is_comp && !component) {
    snprintf(err, errlen, "a WASI 0.2 component, where only a core module is accepted");
    return -1;
  }
  own[0] = shipped[0] = 0;
  if (cache) {
    cache_path(e, sha, own, sizeof own);
    snprintf(shipped, sizeof shipped, "%s/%s.cwasm", e->cache_dir, sha);
  }
  /* An explicit file (--check-module --precompiled) is what is being checked: try it first. */
  if (precompiled && loaded(m = try_precompiled(e, is_comp, sha, precompiled))) *source = TS_LOAD_PRECOMPILED;
  if (!loaded(m) && cache && access(own, R_OK) == 0) {
    m = deserialize(e, is_comp, own, msg, sizeof msg);
    if (!loaded(m)) { /* incompatible or damaged entry: recompile and replace it */
      ts_log_warn("ignoring cached module %s: %s", own, msg);
    } else {
      *source = TS_LOAD_CACHE;
      atomic_fetch_add(&g_metrics.cache_hits_total, 1);
    }
  }
  int shipped_present = !precompiled && cache && access(shipped, R_OK) == 0;
  if (!loaded(m) && shipped_present && loaded(m = try_precompiled(e, is_comp, sha, shipped)))
    *source = TS_LOAD_PRECOMPILED;
  if (!loaded(m)) {
    atomic_fetch_add(&g_metrics.compiles_total, 1);
    werr = is_comp ? wasmtime_component_new(e->engine, wasm, len, &m.component)
                   : wasmtime_module_new(e->engine, wasm, len, &m.module);
    if (werr) {
      ts_wt_error_text(werr, msg, sizeof msg);
      snprintf(err, errlen, "compile failed: %s", msg);
      return -1;
    }
  }
  if (is_comp) {
    /* Serialized before prepare takes the component (and frees it on failure). */
    if (cache && *source == TS_LOAD_COMPILED) cache_store(e, m, own);
    if (ts_component_prepare(e, m.component, component, err, errlen)) {
      if (cache && *source == TS_LOAD_COMPILED) unlink(own);
      return -1;
    }
  } else {
    werr = wasmtime_linker_instantiate_pre(e->linker, m.module, pre);
    if (werr) {
      ts_wt_error_text(werr, msg, sizeof msg);
      snprintf(err, errlen, "link failed: %s", msg);
      wasmtime_module_delete(m.module);
      return -1;
    }
    if (cache && *source == TS_LOAD_COMPILED) cache_store(e, m, own);
  }
  /* A shipped file that was used becomes the cache entry (a rename: no second
   * write); one that was refused or is shadowed by the entry is dropped. An
   * explicit --precompiled file is never touched: deploy still owns it. */
  if (shipped_present) {
    if (*source == TS_LOAD_PRECOMPILED) {
      if (rename(shipped, own) != 0) ts_log_warn("cannot move %s to %s: %s", shipped, own, strerror(errno));
    } else {
      unlink(shipped);
    }
  }
  *module = m.module;
  return 0;
}

/* WASI's own stdout/stderr. Our fd_write takes the guest's writes; these get
 * what still reaches Wasmtime's streams: in runs with folders, writes to a
 * descriptor the guest renumbered stdout/stderr onto (see the WASI bridge). */
static ptrdiff_t stdout_cb(void *data, const unsigned char *p, size_t n) {
  sink_append(data, p, n);
  return (ptrdiff_t)n;
}

static ptrdiff_t stderr_cb(void *data, const unsigned char *p, size_t n) {
  ts_log_app_write(data, p, n);
  return (ptrdiff_t)n;
}

ts_run_result ts_engine_run(ts_engine *e, const wasmtime_instance_pre_t *pre, const ts_run_input *in,
                            ts_run_output *out) {
  ts_run_result result = TS_RUN_OK;
  wasm_trap_t *trap = NULL;
  wasmtime_error_t *werr = NULL;
  /* One deadline for the whole request: the epoch deadline below, and host
   * calls that wait (poll_oneoff). Time spent queued for a guest thread
   * counts: timeout-ms is the request's wall-clock limit. */
  uint64_t now_ns = clock_ns(CLOCK_MONOTONIC);
  uint64_t deadline_ns = in->deadline_us ? in->deadline_us * 1000u : now_ns + e->timeout_ms * 1000000u;
  run_ctx rc = {.out = {&out->out, in->max_output, &out->output_truncated},
                .log = in->stderr_log,
                .stdin_len = in->stdin_len,
                .deadline_ns = deadline_ns,
                .engine = e};
  out->message[0] = 0;
  out->exit_status = 0;
  if (deadline_ns <= now_ns) { /* no time left: not even instantiated */
    snprintf(out->message, sizeof out->message,
             "request timed out (deadline passed while it waited for a guest thread)");
    return TS_RUN_TIMEOUT;
  }
  uint64_t ticks = (deadline_ns - now_ns + TS_EPOCH_TICK_MS * 1000000u - 1) / (TS_EPOCH_TICK_MS * 1000000u) + 1;

  wasmtime_store_t *store = wasmtime_store_new(e->engine, &rc, NULL);
  if (!store) {
    snprintf(out->message, sizeof out->message, "cannot create a store");
    return TS_RUN_ERROR;
  }
  wasmtime_context_t *ctx = wasmtime_store_context(store);
  uint64_t mem = in->memory_bytes && in->memory_bytes < e->memory_bytes ? in->memory_bytes : e->memory_bytes;
  wasmtime_store_limiter(store, (int64_t)mem, -1, -1, -1, -1);
  wasmtime_context_set_epoch_deadline(ctx, ticks);

  wasi_config_t *wasi = wasi_config_new();
  wasi_config_set_argv(wasi, in->argc, in->argv);
  wasi_config_set_env(wasi, in->envc, in->env_names, in->env_values);
  wasm_byte_vec_t stdin_vec;
  wasm_byte_vec_new(&stdin_vec, in->stdin_len, (const wasm_byte_t *)in->stdin_data);
  wasi_config_set_stdin_bytes(wasi, &stdin_vec); /* takes the vector */
  wasi_config_set_stdout_custom(wasi, stdout_cb, &rc.out, NULL);
  wasi_config_set_stderr_custom(wasi, stderr_cb, in->stderr_log, NULL);
  for (size_t i = 0; i < in->npreopens; i++)
    if (!wasi_config_preopen_dir(wasi, in->preopens[i].host, in->preopens[i].guest, in->preopens[i].writable != 0))
      ts_log_warn("cannot preopen %s at %s for the guest", in->preopens[i].host, in->preopens[i].guest);
  werr = wasmtime_context_set_wasi(ctx, wasi); /* takes the config, even on error */
  if (werr) {
    ts_wt_error_text(werr, out->message, sizeof out->message);
    wasmtime_store_delete(store);
    return TS_RUN_ERROR;
  }

  atomic_fetch_add_explicit(&g_metrics.instances_total, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&g_metrics.instances_active, 1, memory_order_relaxed);
  wasmtime_instance_t inst;
  werr = wasmtime_instance_pre_instantiate(pre, ctx, &inst, &trap);
  if (!werr && !trap) {
    wasmtime_extern_t start;
    const char *entry = in->entrypoint ? in->entrypoint : "_start";
    if (!wasmtime_instance_export_get(ctx, &inst, entry, strlen(entry), &start) || start.kind != WASMTIME_EXTERN_FUNC) {
      if (in->entrypoint)
        snprintf(out->message, sizeof out->message, "module has no function export '%.200s' (the route's entry point)",
                 entry);
      else snprintf(out->message, sizeof out->message, "module has no _start function (not a WASI command)");
      out->no_entrypoint = 1;
      result = TS_RUN_ERROR;
    } else {
      werr = wasmtime_func_call(ctx, &start.of.func, NULL, 0, NULL, 0, &trap);
    }
  }
  if (rc.exited) { /* our proc_exit: the trap or error it raised is the exit itself */
    if (trap) wasm_trap_delete(trap);
    if (werr) wasmtime_error_delete(werr);
    trap = NULL;
    werr = NULL;
    out->exit_status = (int)rc.exit_status;
    result = rc.exit_status == 0 ? TS_RUN_OK : TS_RUN_EXIT;
    if (rc.exit_status)
      snprintf(out->message, sizeof out->message, "guest exited with status %u", (unsigned)rc.exit_status);
  } else if (rc.deadline_hit) { /* our poll_oneoff stopped at the deadline (it comes back as an error) */
    result = TS_RUN_TIMEOUT;
    snprintf(out->message, sizeof out->message,
             "request timed out (deadline reached while the guest waited in poll_oneoff)");
    if (trap) wasm_trap_delete(trap);
    if (werr) wasmtime_error_delete(werr);
  } else if (trap) {
    wasmtime_trap_code_t code;
    if (wasmtime_trap_code(trap, &code) && code == WASMTIME_TRAP_CODE_INTERRUPT) {
      result = TS_RUN_TIMEOUT;
      snprintf(out->message, sizeof out->message, "request timed out (epoch deadline)");
    } else {
      result = TS_RUN_TRAP;
      trap_text(trap, out->message, sizeof out->message);
    }
    wasm_trap_delete(trap);
  } else if (werr) {
    int status;
    if (wasmtime_error_exit_status(werr, &status)) {
      out->exit_status = status;
      result = status == 0 ? TS_RUN_OK : TS_RUN_EXIT;
      if (status) snprintf(out->message, sizeof out->message, "guest exited with status %d", status);
      wasmtime_error_delete(werr);
    } else {
      ts_wt_error_text(werr, out->message, sizeof out->message);
      result = TS_RUN_ERROR;
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
