;; @NAME@: a Tiramisu app in WebAssembly text (made by `tiramisu init`).
;;
;; Each request runs the module's _start once, as CGI (WAGI): write the response
;; headers, a blank line and the body to stdout (fd 1) with WASI's fd_write.
;; Build: tiramisu build .    Deploy: tiramisu deploy . --host HOST
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)

  ;; the whole response at address 16: headers, blank line, body
  (data (i32.const 16) "@RESPONSE@")

  (func (export "_start")
    ;; one iovec at address 0: { buf = 16, len = @LENGTH@ }
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const @LENGTH@))
    ;; fd 1 (stdout), 1 iovec, bytes written go to address 8
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
