"""demo: the main job end to end on the embedded default host (the sandbox)."""

import time
import urllib.request

from .. import lifecycle as lc
from .. import sandbox as sb
from ..deploy import validate_app_name
from ..hostrun import run_on_hosts
from ..paths import examples_dir
from ..taskkit import note, out, task
from .deploy import deploy_box
from .host import _check


@task(help={
    "example": "what to deploy (default: wasm_examples/hello-c)",
    "host": "deploy to this host instead of the local sandbox",
})
def demo(c, example=None, host=None):
    """Sandbox up -> host.check -> setup -> deploy an example -> request it through nginx."""
    from ..apps.build import build_app

    started = time.monotonic()
    if host is None:
        note("== sandbox.up: a user-level sshd on 127.0.0.1 (no root needed)")
        sb.up(note=note)
        host = sb.NAME
    note(f"== host.check {host}")
    _check(c, host, json=False, refresh=True, accept_new=False)
    note(f"== setup --host {host}")
    setups = run_on_hosts(c, host, lambda conn, spec, rep: lc.setup_box(c, conn, spec, rep, {}))
    source = example or str(examples_dir() / "hello-c")
    note(f"== deploy {source} --host {host}")
    built = build_app(source)
    app = validate_app_name(built.name)
    deploys = run_on_hosts(c, host, lambda conn, spec, rep: deploy_box(c, conn, spec, rep, built, app, None,
                                                                        False, None))
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
    out(f"\n(setup {setups[0].value['seconds']}s, deploy {deploys[0].value.get('seconds', 0)}s, "
        f"total {time.monotonic() - started:.1f}s)")
