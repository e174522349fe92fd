"""Time from the .wasm rename to the first served request, with and without a
precompiled module (deploy --aot), on the natively built custom_server.

    .venv/bin/python bench/aot_swap.py [--runs 5] [--json]

Modules: a zig-built C hello with libc, and (when Debian's rustc with the
wasm32-wasi std is installed) a Rust std program: the bigger one. For each,
three deploy shapes, each on a fresh server with an empty cache:

    compile-on-swap   no check; the server compiles after the rename
    check+cache       today's deploy: --check-module compiles (and fills the
                      cache) before the rename; the swap is a cache hit
    aot               deploy --aot: --check-module --precompiled deserializes
                      the shipped file; it is renamed to cache/<sha>.cwasm
                      before the .wasm; the swap adopts it

Reported: local precompile time, box-side check time, rename->200 time and
check + rename->200 (ms, median of runs; the modes are interleaved). Numbers from a noisy
2-core machine: compare ratios.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.server import RunningServer, free_port, install_module, sha256_bytes  # noqa: E402
from tiramisu_tasks import aot  # noqa: E402

C_HELLO = '#include <stdio.h>\nint main(void){printf("Content-Type: text/plain\\n\\nhello\\n");return 0;}\n'
RUST_BIG = REPO / "bench" / "aot_big.rs"


def build_server(out):
    from tiramisu_tasks.serverbuild import build_server as build
    from tiramisu_tasks.targets import parse_target_name
    from tiramisu_tasks.toolchains import choose_toolchain

    target = parse_target_name(platform.machine())
    build(target, choose_toolchain("auto", target), out_dir=out)
    return out / "bin" / "custom_server"


def build_modules(tmp):
    mods = {}
    c = tmp / "hello.c"
    c.write_text(C_HELLO)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ziglang",
            "cc",
            "-target",
            "wasm32-wasi",
            "-O2",
            str(c),
            "-o",
            str(tmp / "c_hello.wasm"),
        ],
        check=True,
    )
    mods["c_hello"] = tmp / "c_hello.wasm"
    rustc = shutil.which("rustc", path="/usr/bin")
    if rustc:
        p = subprocess.run(
            [rustc, "--target", "wasm32-wasi", "-C", "debuginfo=0", str(RUST_BIG), "-o", str(tmp / "rust_big.wasm")],
            capture_output=True,
            text=True,
        )
        if p.returncode == 0:
            mods["rust_big"] = tmp / "rust_big.wasm"
        else:
            print(f"skipping rust_big: {p.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    return mods


def wait_200(srv, path, timeout=120):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            if srv.get(path, timeout=10)[0] == 200:
                return time.perf_counter()
        except OSError:
            pass
        time.sleep(0.0005)
    raise RuntimeError(f"{path} not served after {timeout}s: {srv.server_log.read_text()[-500:]}")


def one_run(binary, wasm, mode, cwasm, tmp):
    base = Path(tempfile.mkdtemp(dir=tmp))
    settings = {
        "listen": f"127.0.0.1:{free_port()}",
        "modules": str(base / "m"),
        "log-dir": str(base / "logs"),
        "cache": str(base / "cache"),
        "workers": 2,
    }
    (base / "m").mkdir()
    (base / "cache").mkdir()
    srv = RunningServer(binary, base, settings).wait_ready()
    try:
        data = wasm.read_bytes()
        sha = sha256_bytes(data)
        check_s = None
        if mode != "compile-on-swap":
            argv = [str(binary), "--check-module", str(wasm), "--cache", settings["cache"], "--workers", "2"]
            if mode == "aot":
                argv += ["--precompiled", str(cwasm)]
            t = time.perf_counter()
            p = subprocess.run(argv, capture_output=True, text=True)
            check_s = time.perf_counter() - t
            assert p.returncode == 0, p.stdout + p.stderr
            if mode == "aot":
                assert p.stdout.split()[2] == "precompiled", p.stdout
                shutil.copyfile(cwasm, base / "cache" / aot.shipped_name(sha))
        t0 = time.perf_counter()
        install_module(base / "m", "app", data)
        t1 = wait_200(srv, "/app")
        code = srv.app("app")["code"]
        expect = {"compile-on-swap": "compiled", "check+cache": "cache", "aot": "precompiled"}[mode]
        assert code == expect, (mode, code)
        return check_s, t1 - t0
    finally:
        srv.stop()
        shutil.rmtree(base, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aot-bench-"))
    try:
        binary = build_server(tmp / "server")
        settings = aot.parse_engine_settings(
            subprocess.run(
                [str(binary), "--engine-settings", "--workers", "2"], capture_output=True, text=True, check=True
            ).stdout
        )
        results = []
        for name, wasm in build_modules(tmp).items():
            t = time.perf_counter()
            cwasm = aot.precompile(
                wasm,
                platform.machine(),
                settings,
                cpu_flags=aot.local_cpu_flags(),
                out_dir=tmp / "aot",
                cache_root=tmp / "aot-cache",
            )
            precompile_s = time.perf_counter() - t
            modes = ("compile-on-swap", "check+cache", "aot")
            runs = {m: [] for m in modes}
            for _ in range(args.runs):  # interleaved: drift on a shared machine hits every mode alike
                for mode in modes:
                    runs[mode].append(one_run(binary, wasm, mode, cwasm, tmp))
            for mode in modes:
                checks = [c for c, _ in runs[mode] if c is not None]
                swaps = [s for _, s in runs[mode]]
                results.append(
                    {
                        "module": name,
                        "wasm_bytes": wasm.stat().st_size,
                        "cwasm_bytes": cwasm.stat().st_size,
                        "mode": mode,
                        "runs": args.runs,
                        "precompile_ms": round(precompile_s * 1000, 1) if mode == "aot" else None,
                        "check_ms": round(statistics.median(checks) * 1000, 1) if checks else None,
                        "rename_to_200_ms": round(statistics.median(swaps) * 1000, 1),
                        "check_plus_swap_ms": round(statistics.median((c or 0) + s for c, s in runs[mode]) * 1000, 1),
                    }
                )
        if args.json:
            print(json.dumps(results, indent=2))
        else:
            print(
                f"{'module':10} {'wasm':>9} {'mode':16} {'precompile':>10} {'check':>8} {'rename->200':>12} "
                f"{'check+swap':>11}  (ms, median of {args.runs})"
            )
            for r in results:
                print(
                    f"{r['module']:10} {r['wasm_bytes']:>9} {r['mode']:16} {r['precompile_ms'] or '':>10} "
                    f"{r['check_ms'] or '':>8} {r['rename_to_200_ms']:>12} {r['check_plus_swap_ms']:>11}"
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
