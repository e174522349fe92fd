# A CGI app in Python: the request is in os.environ and sys.stdin, the
# response goes to stdout as headers, a blank line and the body.
# `tiramisu build` makes it a WASI 0.2 command component with componentize-py.
import os
import sys
from urllib.parse import parse_qsl

method = os.environ.get("REQUEST_METHOD", "GET")
path = os.environ.get("PATH_INFO") or "/"
query = parse_qsl(os.environ.get("QUERY_STRING", ""))
length = int(os.environ.get("CONTENT_LENGTH") or 0)
body = sys.stdin.buffer.read(length) if length > 0 else b""

out = [f"Hello from Python! {method} {path}"]
out += [f"query {k} = {v}" for k, v in sorted(query)]
if body:
    out.append(f"body ({len(body)} bytes): {body.decode('utf-8', 'replace')}")
sys.stdout.write("Content-Type: text/plain; charset=utf-8\n")
sys.stdout.write(f"X-Python: {sys.version_info.major}.{sys.version_info.minor}\n\n")
sys.stdout.write("\n".join(out) + "\n")
