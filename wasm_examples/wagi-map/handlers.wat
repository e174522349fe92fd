;; WAGI handlers without a compiler: one module, four exports.
;; _start answers the route itself; hello and goodbye are entry points that
;; modules.toml names or that _routes maps below the module's route.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "Content-Type: text/plain\n\nmain handler (_start)\n")
  (data (i32.const 120) "Content-Type: text/plain\n\nhello handler\n")
  (data (i32.const 168) "Content-Type: text/plain\n\ngoodbye handler\n")
  (data (i32.const 218) "/hello hello\n/goodbye/... goodbye\n")
  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start") (call $print (i32.const 64) (i32.const 48)))
  (func (export "hello") (call $print (i32.const 120) (i32.const 40)))
  (func (export "goodbye") (call $print (i32.const 168) (i32.const 42)))
  (func (export "_routes") (call $print (i32.const 218) (i32.const 34)))
)
