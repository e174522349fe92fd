;; Files in a preopened folder (fd 3, guest path /data), for the WASI bridge
;; of runs with folders (ts_engine.c): tests/cserver/test_appmap_server.py
;; runs this module both in the server and in plain Wasmtime and compares.
;; Prints two-digit answers: open of /data/out.txt, a write to it, its fdstat
;; and file type, writes to fd 77 and to the folder's fd, close, a write
;; after close, a second file renumbered onto fd 2 (then written there), the
;; file type of fd 2. With an argument ("?oob") a write to a file first takes
;; its iovecs from outside memory.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fdstat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_renumber" (func $renumber (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "Content-Type: text/plain\n\n")
  (data (i32.const 200) "open=00 write=00 stat=00 type=00 bad=00 dir=00 close=00 after=00 ren=00 type2=00\n")
  (data (i32.const 300) "file-data\n")
  (data (i32.const 320) "out.txt")
  (data (i32.const 330) "moved.txt")
  (data (i32.const 340) "oob.txt")
  (func $digits (param $at i32) (param $v i32)
    (i32.store8 (local.get $at) (i32.add (i32.const 48) (i32.div_u (local.get $v) (i32.const 10))))
    (i32.store8 (i32.add (local.get $at) (i32.const 1)) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10)))))
  (func $open_file (param $name i32) (param $len i32) (param $out i32) (result i32)
    ;; oflags creat|trunc, every right
    (call $open (i32.const 3) (i32.const 0) (local.get $name) (local.get $len) (i32.const 9)
      (i64.const 536870911) (i64.const 536870911) (i32.const 0) (local.get $out)))
  (func (export "_start")
    (local $fd i32)
    (drop (call $args_sizes_get (i32.const 48) (i32.const 52)))
    (if (i32.gt_u (i32.load (i32.const 48)) (i32.const 1))
      (then
        (drop (call $open_file (i32.const 340) (i32.const 7) (i32.const 508)))
        (drop (call $write (i32.load (i32.const 508)) (i32.const 65532) (i32.const 1) (i32.const 40)))))
    (call $digits (i32.const 205) (call $open_file (i32.const 320) (i32.const 7) (i32.const 500)))
    (local.set $fd (i32.load (i32.const 500)))
    (i32.store (i32.const 0) (i32.const 300))
    (i32.store (i32.const 4) (i32.const 10))
    (call $digits (i32.const 214) (call $write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 40)))
    (call $digits (i32.const 222) (call $fdstat (local.get $fd) (i32.const 400)))
    (call $digits (i32.const 230) (i32.load8_u (i32.const 400)))
    (call $digits (i32.const 237) (call $write (i32.const 77) (i32.const 0) (i32.const 1) (i32.const 40)))
    (call $digits (i32.const 244) (call $write (i32.const 3) (i32.const 0) (i32.const 1) (i32.const 40)))
    (call $digits (i32.const 253) (call $close (local.get $fd)))
    (call $digits (i32.const 262) (call $write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 40)))
    (drop (call $open_file (i32.const 330) (i32.const 9) (i32.const 504)))
    (call $digits (i32.const 269) (call $renumber (i32.load (i32.const 504)) (i32.const 2)))
    (drop (call $fdstat (i32.const 2) (i32.const 400)))
    (call $digits (i32.const 278) (i32.load8_u (i32.const 400)))
    (drop (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 40)))
    ;; one iovec a call: Wasmtime's fd_write writes only the first
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 26))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 40)))
    (i32.store (i32.const 0) (i32.const 200))
    (i32.store (i32.const 4) (i32.const 81))
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 40)))))
