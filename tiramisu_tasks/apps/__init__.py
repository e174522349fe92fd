"""User applications: source → WASI command module (.wasm), validated.

detect    which language a source path is (pure classification + a listing)
validate  our own reader of the WebAssembly binary format: is it a WASI
          preview 1 command module the server can run?
builders  one builder per toolchain: argv as data, `problem()` names what to
          install when the toolchain is missing
build     build_app(): detect → pick a working builder → build in a scratch
          copy → validate → artifact cache
wagi      the WAGI/CGI contract as pure functions (environment, argv, output
          parsing), shared by the local runner and the tests
localrun  run a module once under the Python `wasmtime` package, WAGI-style
expect    the `expected.json` format of wasm_examples/ and its checker
"""
