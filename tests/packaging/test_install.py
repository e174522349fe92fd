"""The package installed like any Python tool: wheel and sdist, in fresh venvs, outside the checkout.

Each artifact is built from this checkout, installed with its dependencies (pip
resolves them as a user's pip would) into a venv under the test's tmp dir, and
run from a directory that is not the checkout: --version/--help, server.build
(from the C sources shipped in the package) and the sandbox demo (the hello-c
example shipped in the package). The build cache (~/.cache/tiramisu or
$TIRAMISU_CACHE) is shared with the rest of the suite; the inventory and the user
dir (sandbox keys, sandbox env dir) are the test's own.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists("/usr/sbin/sshd"), reason="the demo's sandbox needs openssh-server"),
]


def _run(argv, timeout=600, **kw):
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kw
    )


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """The wheel and the sdist, built straight from the checkout (as `python -m build` does)."""
    out = tmp_path_factory.mktemp("dist")
    proc = _run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", out, REPO], timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    wheels, sdists = sorted(out.glob("tiramisu-*.whl")), sorted(out.glob("tiramisu-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


@pytest.fixture(scope="module")
def checkout_server_key():
    proc = cli("tiramisu", "server.build", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["key"]


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_installed_package_builds_the_server_and_runs_the_demo(kind, artifacts, checkout_server_key, tmp_path):
    venv = tmp_path / "venv"
    proc = _run([sys.executable, "-m", "venv", venv])
    assert proc.returncode == 0, proc.stderr
    # the sdist is built into a wheel by pip here: setup.py's copy step runs from the sdist's tree
    proc = _run([venv / "bin" / "python", "-m", "pip", "install", "-q", artifacts[kind]], timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]

    work = tmp_path / "elsewhere"
    work.mkdir()
    home = tmp_path / "tiramisu-home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "TIRAMISU_HOME", "TIRAMISU_INVENTORY")
    }
    env.update(
        TIRAMISU_HOME=str(home),
        TIRAMISU_INVENTORY=str(home / "tiramisu.yaml"),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    )

    def tiramisu(*args, timeout=600):
        return _run([venv / "bin" / "tiramisu", *args], timeout=timeout, cwd=str(work), env=env)

    # the package imported is the installed one, and it carries its data
    where = _run(
        [
            venv / "bin" / "python",
            "-c",
            "import tiramisu_tasks.paths as p; print(p.data_dir('cserver')); print(p.examples_dir())",
        ],
        cwd=str(work),
        env=env,
    )
    assert where.returncode == 0, where.stderr
    cserver, examples = (Path(line) for line in where.stdout.split())
    site = venv.resolve()
    assert site in cserver.parents and site in examples.parents, where.stdout
    assert (cserver / "ts_main.c").is_file() and (cserver / "ts_server.h").is_file()
    assert (examples / "hello-c" / "hello.c").is_file() and (examples / "hello-c" / "expected.json").is_file()

    version = tiramisu("--version")
    assert version.returncode == 0 and version.stdout.startswith("Tiramisu "), version.stdout + version.stderr
    helped = tiramisu("--help")
    assert helped.returncode == 0 and "server.build" in helped.stdout and "demo" in helped.stdout, helped.stderr

    # tiramisu init from the package's starters; the WAT one builds with the installed wasmtime alone
    for lang in ("wat", "c"):
        made = tiramisu("init", f"starter-{lang}", "--lang", lang)
        assert made.returncode == 0, made.stderr
        assert (work / f"starter-{lang}" / "tiramisu.toml").is_file()
    app = tiramisu("build", "starter-wat", "--json", timeout=900)
    assert app.returncode == 0 and json.loads(app.stdout)["name"] == "starter-wat", app.stderr[-2000:]

    built = tiramisu("server.build", "--json", timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    server = json.loads(built.stdout)
    assert os.access(server["binary"], os.X_OK), server
    # the packaged sources are exactly the checkout's: same cache key
    assert server["key"] == checkout_server_key, server

    try:
        demo = tiramisu("demo", timeout=900)
        assert demo.returncode == 0, demo.stderr[-3000:]
        assert "hello-c is live at http://127.0.0.1:" in demo.stdout and "-> HTTP 200" in demo.stdout, demo.stdout
        assert "Hello from C" in demo.stdout
        assert str(examples / "hello-c") in demo.stderr, demo.stderr[-2000:]
    finally:
        tiramisu("teardown", "--host", "sandbox", "--yes")
        down = tiramisu("sandbox.down")
    assert down.returncode == 0, down.stderr
