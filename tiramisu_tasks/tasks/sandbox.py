"""sandbox.*: a local SSH "box" on 127.0.0.1, no root needed (see tiramisu_tasks/sandbox.py)."""

from invoke import Collection

from .. import sandbox as sb
from ..taskkit import emit_json, note, out, task


def _describe(st):
    if st["state"] == "running":
        return f"sandbox running: {st['user']}@{st['hostname']}:{st['port']} (pid {st['pid']})"
    port = f" (last port {st['port']})" if st.get("port") else ""
    return f"sandbox stopped{port}"


@task(
    help={
        "port": f"port on 127.0.0.1 (default {sb.DEFAULT_PORT}, or the last one; any free port if busy)",
        "json": "print the result as JSON",
    }
)
def up(c, port=None, json=False):
    """Start the local sandbox sshd and register it in the inventory as 'sandbox'."""
    st = sb.up(port=port, note=note)
    if json:
        emit_json(st)
        return
    out(_describe(st) if st["started"] else _describe(st) + " (already running)")
    out(
        f"inventory: {st['inventory']} (host 'sandbox', http_port={st['settings'].get('http_port')}, "
        f"server_port={st['settings'].get('server_port')})"
    )


@task(help={"json": "print the result as JSON"})
def down(c, json=False):
    """Stop the sandbox sshd (the inventory entry stays)."""
    st = sb.down()
    if json:
        emit_json(st)
        return
    out("sandbox stopped" if st["stopped"] else "sandbox was not running")


@task(help={"json": "print the result as JSON"})
def status(c, json=False):
    """Say whether the sandbox sshd runs, on which port, with which pid."""
    st = sb.status()
    if json:
        emit_json(st)
        return
    out(_describe(st))


ns = Collection("sandbox", up, down, status)
