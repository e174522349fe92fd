;; fd_write and fd_fdstat_get as guests see them (the server has its own, see
;; ts_engine.c): the errno for fd 3 and fd 0 (EBADF, 8) and fd 2 (0), several
;; iovecs in one call; fdstat of fd 3 (EBADF) and the rights of fds 0 and 1
;; (fd_read 2, fd_write 64), as Wasmtime's WASI answers them; with an
;; argument ("?oob") the iovec array lies outside memory (a trap).
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fdstat (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "Content-Type: text/plain\n\n")
  (data (i32.const 200) "fd3=00 fd0=00 fd2=00 st3=00 r0=00 r1=00\n")
  (data (i32.const 300) "to the log\n")
  (func $digits (param $at i32) (param $v i32)
    (i32.store8 (local.get $at) (i32.add (i32.const 48) (i32.div_u (local.get $v) (i32.const 10))))
    (i32.store8 (i32.add (local.get $at) (i32.const 1)) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10)))))
  (func (export "_start")
    ;; argc > 1: the path and one query item
    (drop (call $args_sizes_get (i32.const 48) (i32.const 52)))
    (if (i32.gt_u (i32.load (i32.const 48)) (i32.const 1))
      (then (drop (call $fd_write (i32.const 1) (i32.const 65532) (i32.const 1) (i32.const 40)))))
    (i32.store (i32.const 0) (i32.const 300))
    (i32.store (i32.const 4) (i32.const 11))
    (call $digits (i32.const 204) (call $fd_write (i32.const 3) (i32.const 0) (i32.const 1) (i32.const 40)))
    (call $digits (i32.const 211) (call $fd_write (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 40)))
    (call $digits (i32.const 218) (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 40)))
    (call $digits (i32.const 225) (call $fdstat (i32.const 3) (i32.const 400)))
    (drop (call $fdstat (i32.const 0) (i32.const 400)))
    (call $digits (i32.const 231) (i32.load8_u (i32.const 408)))
    (drop (call $fdstat (i32.const 1) (i32.const 400)))
    (call $digits (i32.const 237) (i32.load8_u (i32.const 408)))
    ;; header and line in one call: two iovecs
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 26))
    (i32.store (i32.const 8) (i32.const 200))
    (i32.store (i32.const 12) (i32.const 40))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 2) (i32.const 40)))))
