#!/usr/bin/env python3
"""`tiramisu` with TCP_NODELAY on the SSH client socket: a what-if for the lifecycle benchmark.

    python bench/nodelay_cli.py deploy app.wasm --host box

paramiko leaves Nagle on; every SSH round trip whose request spans two small
segments then waits for the peer's delayed ACK (~40 ms on Linux). This shim
sets TCP_NODELAY on the socket of every paramiko Transport and runs the real
CLI unchanged, to measure what the same one-line change in the project's
connection code would give.
"""

import socket
import sys

import paramiko


def _patch():
    init = paramiko.Transport.__init__

    def patched(self, sock, *args, **kwargs):
        init(self, sock, *args, **kwargs)
        if isinstance(self.sock, socket.socket) and self.sock.family in (socket.AF_INET, socket.AF_INET6):
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    paramiko.Transport.__init__ = patched


if __name__ == "__main__":
    _patch()
    from tiramisu_tasks.cli import main

    sys.argv[0] = "tiramisu"
    sys.exit(main())
