#!/usr/bin/env python3
"""A/B benchmark of two custom_server source trees, in one run.

    .venv/bin/python bench/server_ab.py --base REV [--cand REV|worktree] [--seconds 4] [--rounds 4]

Builds custom_server from cserver/ at git revision REV (base) and from the
work tree (or another revision, cand), starts both with the production
server.conf on free ports, and runs `wrk -t2 -c32` on each guest of
bench/guests/ (trivial WAT, libc C) alternating base/cand round by round.
Prints median rps, p50/p99 and cand/base ratios. For judging a server change:
the noise of this machine is in every round, so only the ratio counts.
"""

import argparse
import io
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit as bk  # noqa: E402
import server_bench as sb  # noqa: E402

from tiramisu_tasks.serverbuild import build_server  # noqa: E402
from tiramisu_tasks.targets import parse_target_name  # noqa: E402
from tiramisu_tasks.toolchains import choose_toolchain  # noqa: E402


def cserver_at(rev, dest):
    """Extract cserver/ of a git revision into dest; return dest/cserver."""
    data = subprocess.run(
        ["git", "-C", str(bk.REPO), "archive", "--format=tar", rev, "cserver"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        tf.extractall(dest)
    return Path(dest) / "cserver"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="git revision of the baseline")
    ap.add_argument("--cand", default="worktree", help="git revision of the candidate (default: the work tree)")
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="tiramisu-bench-ab-"))
    target = parse_target_name(platform.machine())
    toolchain = choose_toolchain("auto", target)
    srcs = {"base": cserver_at(args.base, work / "base-src")}
    srcs["cand"] = bk.REPO / "cserver" if args.cand == "worktree" else cserver_at(args.cand, work / "cand-src")
    guests = {"hello": work / "hello.wasm", "hello_libc": work / "hello_libc.wasm"}
    import wasmtime

    guests["hello"].write_bytes(wasmtime.wat2wasm((sb.GUESTS / "hello.wat").read_text()))
    bk.run(
        [
            sys.executable,
            "-m",
            "ziglang",
            "cc",
            "-target",
            "wasm32-wasi",
            "-Os",
            "-s",
            sb.GUESTS / "hello_libc.c",
            "-o",
            guests["hello_libc"],
        ],
        capture_output=True,
    )
    with bk.Procs() as procs:
        ports = {}
        for name, src in srcs.items():
            out = work / f"{name}-server"
            build_server(target, toolchain, out_dir=out, src_dir=src)
            ports[name] = bk.free_port()
            sb.start_custom_server(procs, out, work / f"{name}-env", ports[name], guests)
            for g in guests:
                sb.check_body(ports[name], f"/{g}", f"{name} {g}")
        configs = [
            (f"{name}:{g}", f"{name} {g}", f"http://127.0.0.1:{ports[name]}/{g}") for g in guests for name in srcs
        ]
        summary = sb.summarize(sb.run_rounds(configs, args.seconds, args.rounds, args.connections))
    rows = []
    for g in guests:
        b, c = summary[f"base:{g}"], summary[f"cand:{g}"]
        rows.append(
            [
                g,
                f"{b['rps']:.0f}",
                f"{c['rps']:.0f}",
                f"{c['rps'] / b['rps']:.2f}×",
                f"{b['p50_ms']:.2f} / {c['p50_ms']:.2f}",
                f"{b['p99_ms']:.2f} / {c['p99_ms']:.2f}",
                b["errors"] + c["errors"],
            ]
        )
    print(
        f"A/B: base {args.base} vs cand {args.cand}; {args.rounds} rounds × {args.seconds} s, "
        f"wrk -t2 -c{args.connections}"
    )
    print(
        bk.table(["guest", "base rps", "cand rps", "cand/base", "p50 ms base/cand", "p99 ms base/cand", "errors"], rows)
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
