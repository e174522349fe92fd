"""The pure parsers of bench/guests_bench.py and bench/guests/phases.py."""

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _import(name, where):
    sys.path.insert(0, str(where))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(where))


def test_parse_stat_reads_cpu_and_faults_after_a_comm_with_spaces():
    gb = _import("guests_bench", BENCH)
    # state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    fields = ["S", "1", "2", "3", "4", "5", "6", "1234", "9", "0", "0", "300", "200"] + ["0"] * 30
    line = "42 (custom server) " + " ".join(fields)
    cpu, faults = gb.parse_stat(line)
    assert faults == 1234 and cpu == 500 / gb.CLK_TCK


def test_parse_wasi_trace_counts_one_call_per_result_line():
    phases = _import("phases", BENCH / "guests")
    text = (
        '\x1b[2mT\x1b[0m abi{module="wasi_snapshot_preview1" function="fd_write"}: x: fd=Fd(1)\n'
        'abi{module="wasi_snapshot_preview1" function="fd_write"}: x: result=Ok(57)\n'
        'abi{module="wasi_snapshot_preview1" function="environ_get"}: x: result=Ok(())\n'
        'abi{module="wasi_snapshot_preview1" function="fd_write"}: x: result=Ok(3)\n'
    )
    assert phases.parse_wasi_trace(text) == {"fd_write": 2, "environ_get": 1}
