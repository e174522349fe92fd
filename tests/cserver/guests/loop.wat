;; Never returns: the epoch deadline must interrupt it (504).
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $forever (br $forever))))
