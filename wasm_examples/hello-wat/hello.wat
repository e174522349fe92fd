;; Hello in hand-written WebAssembly text: one fd_write of a constant.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)

  ;; the CGI response: headers, blank line, body
  (data (i32.const 16) "Content-Type: text/plain; charset=utf-8\n\nHello from WAT!\n")

  (func (export "_start")
    ;; one iovec at address 0: { buf = 16, len = 57 }
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 57))
    ;; fd 1 (stdout), 1 iovec, bytes written go to address 8
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
