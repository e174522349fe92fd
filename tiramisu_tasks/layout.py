"""Every path on the box, derived from one root (the env dir).

The box's layout is a contract shared by setup, webserv, deploy and the C
server; keep all of it here so a change is made once.
"""

import posixpath
from dataclasses import dataclass

DEFAULT_ENV_DIR = "~/tiramisu-env"
DEFAULT_HTTP_PORT = 8080
DEFAULT_SERVER_PORT = 9000


@dataclass(frozen=True)
class RemoteLayout:
    root: str  # absolute path on the box (the env dir with ~ resolved)

    def _p(self, *parts):
        return posixpath.join(self.root, *parts)

    @property
    def bin(self):
        return self._p("bin")

    @property
    def lib(self):
        return self._p("lib")

    @property
    def conf(self):
        return self._p("conf")

    @property
    def modules(self):
        return self._p("wasm_modules")

    @property
    def releases(self):
        return self._p("releases")

    @property
    def logs(self):
        return self._p("logs")

    @property
    def app_logs(self):
        return self._p("logs", "apps")

    @property
    def run(self):
        return self._p("run")

    @property
    def tmp(self):
        return self._p("tmp")

    @property
    def cache(self):
        return self._p("cache")

    @property
    def nginx_bin(self):
        return self._p("bin", "nginx")

    @property
    def server_bin(self):
        return self._p("bin", "custom_server")

    @property
    def wasmtime_lib(self):
        return self._p("lib", "libwasmtime.so")

    @property
    def nginx_conf(self):
        return self._p("conf", "nginx.conf")

    @property
    def server_conf(self):
        return self._p("conf", "server.conf")

    @property
    def routes_file(self):
        return self._p("conf", "routes.conf")

    @property
    def version_file(self):
        return self._p("VERSION")

    @property
    def state(self):
        """Box state kept by the local side: the lock and the history (see boxlock, history)."""
        return self._p("state")

    @property
    def lock_dir(self):
        return self._p("state", "lock")

    @property
    def history_file(self):
        return self._p("state", "history.jsonl")

    @property
    def tls_dir(self):
        """Certificates and keys nginx serves (0700, files 0600; tiramisu_tasks/tls.py)."""
        return self._p("tls")

    @property
    def acme_challenges(self):
        """ACME HTTP-01 answers, served at /.well-known/acme-challenge/ on the HTTP port."""
        return self._p("acme-challenge")

    def pid_file(self, service):
        return self._p("run", f"{service}.pid")

    def log_file(self, name):
        return self._p("logs", name)

    def app_module(self, app):
        return self._p("wasm_modules", f"{app}.wasm")

    def app_releases(self, app):
        return self._p("releases", app)

    def release(self, app, release_id):
        return self._p("releases", app, f"{release_id}.wasm")

    def app_log(self, app):
        return self._p("logs", "apps", f"{app}.log")

    def directories(self):
        """Every directory setup creates (mode 0700), parents first."""
        return [
            self.root,
            self.bin,
            self.lib,
            self.conf,
            self.modules,
            self.releases,
            self.logs,
            self.app_logs,
            self.run,
            self.tmp,
            self.cache,
        ]


def resolve_env_dir(env_dir, home):
    """``~/x`` or a relative path → absolute, given the box's $HOME."""
    env_dir = env_dir or DEFAULT_ENV_DIR
    if env_dir == "~":
        return home
    if env_dir.startswith("~/"):
        return posixpath.join(home, env_dir[2:])
    if not env_dir.startswith("/"):
        return posixpath.join(home, env_dir)
    return posixpath.normpath(env_dir)
