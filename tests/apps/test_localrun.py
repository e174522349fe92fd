"""The local WAGI runner never raises for what a guest does: traps, exits,
endless loops and bad CGI output all become a 500 with the reason."""

import pytest

from tiramisu_tasks.apps.localrun import run_request
from tiramisu_tasks.apps.wagi import Request

wasmtime = pytest.importorskip("wasmtime")

PRELUDE = """
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "X-Only: 1\\n\\n")
"""

GUESTS = [
    ("trap", '(func (export "_start") unreachable)', "trap: wasm trap: wasm `unreachable` instruction executed"),
    ("exit 3", '(func (export "_start") (call $exit (i32.const 3)))', "guest exited with status 3"),
    ("endless loop", '(func (export "_start") (loop $l (br $l)))', "timed out after 0.5 s"),
    (
        "bad cgi output",
        """(func (export "_start")
        (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 11))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))""",
        "bad CGI output: guest output has none of Content-Type, Location, Status",
    ),
]


@pytest.mark.parametrize("func,reason", [g[1:] for g in GUESTS], ids=[g[0] for g in GUESTS])
def test_guest_failures_become_500(tmp_path, func, reason):
    path = tmp_path / "guest.wasm"
    path.write_bytes(wasmtime.wat2wasm(f"(module {PRELUDE} {func})"))
    run = run_request(path, Request(), timeout=0.5)
    assert run.response.status == 500
    assert reason in run.error or reason in run.response.body.decode()


def test_exit_zero_is_success(tmp_path):
    path = tmp_path / "ok.wasm"
    path.write_bytes(
        wasmtime.wat2wasm(f"""(module {PRELUDE}
      (data (i32.const 64) "Status: 204\\n\\n")
      (func (export "_start")
        (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 13))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (call $exit (i32.const 0))))""")
    )
    run = run_request(path, Request())
    assert (run.response.status, run.exit_code, run.error) == (204, 0, "")
