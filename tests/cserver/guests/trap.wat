;; Traps at once (unreachable): a 500 with the reason in the error log.
(module
  (memory (export "memory") 1)
  (func (export "_start") unreachable))
