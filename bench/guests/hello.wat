;; The trivial WAGI guest: no libc, `_start` writes one fixed CGI response.
;; Same logic as hello_http.wat (the wasi:http peer) and peers/c_backend.c.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "Content-Type: text/plain\n\nhello from wasm\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))  ;; iovec: base
    (i32.store (i32.const 4) (i32.const 42))  ;; iovec: length
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
