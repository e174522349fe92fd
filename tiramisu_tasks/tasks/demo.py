"""demo: the main job end to end on the embedded default host (the sandbox)."""

import time
import urllib.request

from .. import deploy as dp
from .. import lifecycle as lc
from .. import sandbox as sb
from ..appnames import validate_app_name
from ..box import connect_box
from ..hostcheck import check_hosts
from ..hostrun import run_on_hosts
from ..paths import examples_dir
from ..taskkit import note, out, task


@task(
    help={
        "example": "what to deploy (default: wasm_examples/hello-c)",
        "host": "deploy to this host instead of the local sandbox",
    }
)
def demo(c, example=None, host=None):
    """Sandbox up -> host.check -> setup -> deploy an example -> request it through nginx."""
    from ..apps.build import build_app

    started = time.monotonic()
    if host is None:
        note("== sandbox.up: a user-level sshd on 127.0.0.1 (no root needed)")
        sb.up(note=note)
        host = sb.NAME
    note(f"== host.check {host}")
    check_hosts(c, host, json=False, refresh=True, accept_new=False)
    note(f"== setup --host {host}")
    setups = run_on_hosts(
        c,
        host,
        lambda conn, spec, rep: lc.setup(connect_box(c, conn, spec, rep, installed_wins=False), lc.local_shipment(c)),
    )
    source = example or str(examples_dir() / "hello-c")
    note(f"== deploy {source} --host {host}")
    built = build_app(source)
    app = validate_app_name(built.name)
    deploys = run_on_hosts(
        c, host, lambda conn, spec, rep: dp.deploy(connect_box(c, conn, spec, rep), built, app, None)
    )
    url = deploys[0].value["url"]
    if host == sb.NAME:
        # The sandbox is this machine: request the public URL like any client would.
        with urllib.request.urlopen(url, timeout=10) as resp:
            status, body = resp.status, resp.read().decode("utf-8", "replace")
    else:
        status, body = deploys[0].value["status"], "(requested through nginx over SSH)"
    out(f"\n{app} is live at {url}")
    out(f"GET {url} -> HTTP {status}")
    out(body.rstrip())
    out(
        f"\n(setup {setups[0].value['seconds']}s, deploy {deploys[0].value.get('seconds', 0)}s, "
        f"total {time.monotonic() - started:.1f}s)"
    )
