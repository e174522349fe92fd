"""A stateful fuzzer for custom_server's connection code.

Whole connections, not single parses: random request heads (valid and
broken), Content-Length and chunked bodies, pipelining, writes split at
random points with random pauses, half-closes and resets, several
connections interleaved. Meant for a build with AddressSanitizer and
UndefinedBehaviorSanitizer, whose reports are the findings; the server must
also stay up and keep answering.

    python -m tests.cserver.connfuzz --host 127.0.0.1 --port 9000 --seconds 60 --seed 1

Prints one JSON line: executions (connections), requests sent, responses
seen, resets, seed. tests/cserver/test_audit.py runs it briefly against the
sanitizer build; longer runs are recorded in cserver/README.md.
"""

import argparse
import json
import random
import socket
import struct
import time

APPS = ["echo", "hello", "cgiout", "nope", "_tiramisu/health", ""]
METHODS = ["GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "G\x00T", "get", "PATCH"]


def _target(rng):
    path = "/" + rng.choice(APPS)
    if rng.random() < 0.5:
        path += "/" + "".join(rng.choice("ab%2F/.~-_ ") for _ in range(rng.randint(0, 30)))
    if rng.random() < 0.4:
        path += "?" + "&".join(
            rng.choice(
                [
                    "a=1",
                    "big=%d" % rng.randint(0, 20000),
                    "hop",
                    "xaccel",
                    "status=%d" % rng.randint(0, 999),
                    "exit=%d" % rng.randint(0, 300),
                    "",
                    "%zz",
                ]
            )
            for _ in range(rng.randint(1, 3))
        )
    if rng.random() < 0.03:
        path = "http://h" + path  # absolute form
    if rng.random() < 0.02:
        path = "/" + "x" * rng.randint(1000, 9000)  # long request line
    return path


def _headers(rng, body_kind, body_len):
    hs = []
    r = rng.random()
    if r < 0.8:
        hs.append(("Host", rng.choice(["h", "h.example:4242", "[::1]:80", "", "a:b:c", "x" * 300])))
    elif r < 0.85:
        hs += [("Host", "a"), ("Host", "b")]
    for _ in range(rng.randint(0, 6)):
        hs.append(
            (
                rng.choice(
                    [
                        "X-A",
                        "Cookie",
                        "Accept",
                        "X-Real-IP",
                        "X-Forwarded-Port",
                        "Expect",
                        "Connection",
                        "Content-Type",
                        "Authorization",
                        "bad name",
                        "X-Big",
                    ]
                ),
                rng.choice(
                    [
                        "1",
                        "a=1",
                        "127.0.0.2",
                        "8080",
                        "100-continue",
                        "close",
                        "keep-alive",
                        "text/plain",
                        "x" * rng.randint(0, 5000),
                        "\t v \t",
                        "99999",
                    ]
                ),
            )
        )
    if body_kind == "cl":
        hs.append(("Content-Length", str(body_len) if rng.random() < 0.95 else rng.choice(["-1", "abc", "1 2"])))
    elif body_kind == "chunked":
        hs.append(("Transfer-Encoding", "chunked" if rng.random() < 0.95 else "gzip, chunked"))
    elif body_kind == "both":
        hs += [("Content-Length", str(body_len)), ("Transfer-Encoding", "chunked")]
    rng.shuffle(hs)
    return hs


def _chunked(rng, body):
    out, i = [], 0
    while i < len(body):
        n = rng.randint(1, max(1, min(len(body) - i, 20000)))
        ext = rng.choice(["", ";a=b", ";" + "e" * 100])
        out.append(b"%x%s\r\n%s\r\n" % (n, ext.encode(), body[i : i + n]))
        i += n
    trailer = rng.choice([b"", b"X-T: 1\r\n"])
    bad = rng.random() < 0.05
    return b"".join(out) + (b"zz\r\n" if bad else b"0\r\n" + trailer + b"\r\n")


def request(rng):
    """One request as bytes (sometimes malformed)."""
    method = rng.choice(METHODS)
    body_kind = rng.choice(["none", "none", "cl", "cl", "chunked", "both"])
    body_len = rng.choice([0, 1, 100, 8191, 8192, 16385, rng.randint(0, 300000)])
    body = bytes(rng.getrandbits(8) for _ in range(min(body_len, 4096))) * (body_len // 4096 + 1)
    body = body[:body_len]
    version = rng.choice(["HTTP/1.1"] * 8 + ["HTTP/1.0", "HTTP/2.0", "HTTP/1.1x"])
    head = f"{method} {_target(rng)} {version}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in _headers(rng, body_kind, body_len))
    head += "\r\n"
    data = head.encode("latin-1")
    if rng.random() < 0.02:
        data = data.replace(b"\r\n", b"\n")
    if body_kind == "cl":
        data += body
    elif body_kind in ("chunked", "both"):
        data += _chunked(rng, body)
    return data


def one_connection(rng, host, port, stats):
    s = socket.create_connection((host, port), timeout=5)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if rng.random() < 0.2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stream = b"".join(request(rng) for _ in range(rng.choice([1, 1, 2, 5, 20])))
        stats["requests"] += stream.count(b" HTTP/")
        i = 0
        while i < len(stream):
            n = rng.choice([1, 7, 100, 1460, 8192, 65536, len(stream)])
            s.sendall(stream[i : i + n])
            i += n
            if rng.random() < 0.05:
                time.sleep(rng.random() * 0.02)
            if rng.random() < 0.01:
                break  # stop in the middle
        end = rng.random()
        if end < 0.15:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            stats["resets"] += 1
            return
        if end < 0.4:
            s.shutdown(socket.SHUT_WR)
        s.settimeout(rng.choice([0.05, 0.3, 2.0]))
        got = b""
        try:
            while len(got) < 50_000_000:
                b = s.recv(1 << 20)
                if not b:
                    break
                got += b
        except socket.timeout:
            pass
        stats["responses"] += got.count(b"HTTP/1.1 ")
    except OSError:
        stats["errors"] += 1
    finally:
        s.close()


def run(host, port, seconds, seed, max_connections=None):
    rng = random.Random(seed)
    stats = {"seed": seed, "executions": 0, "requests": 0, "responses": 0, "resets": 0, "errors": 0}
    deadline = time.time() + seconds
    while time.time() < deadline and (max_connections is None or stats["executions"] < max_connections):
        one_connection(rng, host, port, stats)
        stats["executions"] += 1
    return stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(json.dumps(run(args.host, args.port, args.seconds, args.seed)))


if __name__ == "__main__":
    main()
