"""Real deployments for the slow tests: nginx or Caddy with TLS in front of `indiebridge serve`.

Everything runs inside a network and mount namespace that the test creates (``unshare``)
and that disappears with its last process, so the machine is left as it was:

* the namespace has its own loopback, so the web server takes the real ports 80 and 443
  and the daemon port 8000 without meeting any other process;
* host names (``blog.test``, ``ap.blog.test``) come from a hosts file bind-mounted over
  ``/etc/hosts`` inside the namespace only;
* a throwaway certificate authority, made here with ``cryptography``, is appended to the
  trust stores inside the namespace only (bind mounts over certifi's bundle, which httpx
  uses, and Debian's bundle); Node reads it from ``NODE_EXTRA_CA_CERTS``.

The web server configurations are the snippets of ``docs/deploy.md`` (marked
``<!-- snippet: NAME -->``), with only the host name, the paths and the certificate lines
replaced, so the documentation and the tests cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
BLOG = "blog.test"
# `serve` as in the README's systemd unit: --production, since behind a proxy the daemon
# listens on loopback, not at base_url's own host and port (that would start a preview).
DAEMON_ARGS = ("--production", "--host", "127.0.0.1", "--port", "8000")
DAEMON_ADDRESS = "127.0.0.1:8000"
DAEMON_HOSTS = (BLOG, f"ap.{BLOG}")
FAKETIME_LIB = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), Path("libfaketime.so.1"))
TRUST_STORES = (Path(certifi.where()), Path("/etc/ssl/certs/ca-certificates.crt"))


def snippet(name: str) -> str:
    """The fenced block that follows ``<!-- snippet: NAME -->`` in docs/deploy.md."""
    text = DEPLOY_DOC.read_text(encoding="utf-8")
    match = re.search(rf"<!-- snippet: {re.escape(name)} -->\n```\w*\n(.*?)```", text, re.S)
    if match is None:
        raise AssertionError(f"docs/deploy.md has no snippet {name!r}")
    return match.group(1)


def replace(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced; fails when ``old`` is missing (the docs changed)."""
    if old not in text:
        raise AssertionError(f"expected {old!r} in the snippet")
    return text.replace(old, new)


# ---- a throwaway certificate authority -------------------------------------------------


def make_certificates(folder: Path, names: tuple[str, ...]) -> dict[str, Path]:
    """A CA and one server certificate for ``names``; returns the PEM file paths."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "indiebridge test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = {"ca": folder / "ca.pem", "cert": folder / "cert.pem", "key": folder / "key.pem"}
    paths["ca"].write_bytes(ca.public_bytes(pem))
    paths["cert"].write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    paths["key"].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


# ---- the namespace ---------------------------------------------------------------------


class Namespace:
    """A network + mount namespace held open by one ``sleep``; ``run``/``start`` enter it."""

    def __init__(self, folder: Path, names: tuple[str, ...], ca: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        hosts = folder / "hosts"
        hosts.write_text("127.0.0.1 localhost " + " ".join(names) + "\n::1 localhost\n")
        mounts = [f"mount --bind {hosts} /etc/hosts"]
        for i, store in enumerate(TRUST_STORES):
            if store.is_file():
                bundle = folder / f"trust-{i}.pem"
                bundle.write_bytes(store.read_bytes() + b"\n" + ca.read_bytes())
                mounts.append(f"mount --bind {bundle} {store}")
        script = " && ".join(["ip link set lo up", *mounts, "echo ready", "exec sleep 3600"])
        self.holder = subprocess.Popen(
            ["unshare", "--net", "--mount", "sh", "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.holder.stdout is not None
        if self.holder.stdout.readline().strip() != "ready":
            self.holder.wait(5)
            raise RuntimeError(f"cannot create the namespace: {self.holder.stderr.read()}")  # type: ignore[union-attr]
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "NODE_EXTRA_CA_CERTS": str(ca),
            "HOME": str(folder),
            "XDG_DATA_HOME": str(folder / "data"),
            "XDG_CONFIG_HOME": str(folder / "config"),
        }

    def command(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--target={self.holder.pid}", "--net", "--mount", "--", *argv]

    def run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(argv), env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def start(
        self, argv: list[str], log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                self.command(argv),
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_port(self, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        """Wait (inside the namespace) until something listens on 127.0.0.1:``port``."""
        probe = (
            "import socket, sys, time\n"
            "for _ in range(300):\n"
            "    try:\n"
            f"        socket.create_connection(('127.0.0.1', {port}), 0.2).close(); sys.exit(0)\n"
            "    except OSError:\n"
            "        time.sleep(0.05)\n"
            "sys.exit(1)\n"
        )
        answered = self.run([sys.executable, "-c", probe]).returncode == 0
        time.sleep(0.2)  # a process that lost the port to another one exits at once
        if not answered or process.poll() is not None:
            raise RuntimeError(f"port {port} did not open: {log.read_text(errors='replace')}")

    def close(self) -> None:
        """End the holder; the namespace and its mounts go with the last process in it."""
        self.holder.terminate()
        self.holder.communicate(timeout=10)


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# ---- web servers -------------------------------------------------------------------------

NGINX_MAIN = """\
user root;
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path {dir}/tmp-body;
    proxy_temp_path {dir}/tmp-proxy;
    fastcgi_temp_path {dir}/tmp-fastcgi;
    uwsgi_temp_path {dir}/tmp-uwsgi;
    scgi_temp_path {dir}/tmp-scgi;
    include site.conf;
}}
"""

Edit = Callable[[str], str]


def adapt(text: str, public: Path, certs: dict[str, Path]) -> str:
    """A docs snippet for the test: its host name, site folder and certificate replaced."""
    text = text.replace("/srv/blog/public", str(public))
    text, found = re.subn(r"/etc/letsencrypt/live/[^/]+/fullchain\.pem", str(certs["cert"]), text)
    text = re.sub(r"/etc/letsencrypt/live/[^/]+/privkey\.pem", str(certs["key"]), text)
    assert found, "a TLS server block names its certificate"
    return text.replace("blog.example", BLOG)


def nginx_config(
    folder: Path,
    public: Path,
    certs: dict[str, Path],
    *,
    snippets: tuple[str, ...] = ("nginx-site",),
    site: Edit = str,
    proxy: Edit = str,
) -> Path:
    """nginx.conf (Debian's http defaults) including the docs' server blocks and proxy file."""
    text = adapt("\n".join(snippet(name) for name in snippets), public, certs)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "site.conf").write_text(site(text))
    (folder / "indiebridge_proxy").write_text(proxy(snippet("nginx-proxy")))
    main = folder / "nginx.conf"
    main.write_text(NGINX_MAIN.format(dir=folder))
    return main


def daemon_only(text: str) -> str:
    """The docs' instruction for nginx: all location blocks replaced by the daemon's one."""
    start, end = text.index("    location / {"), text.rindex("}")
    return text[:start] + snippet("nginx-daemon-only") + text[end:]


def without_daemon(text: str) -> str:
    """The blog's server block as on a host without the daemon (split-domain setup)."""
    return "".join(line for line in text.splitlines(keepends=True) if "proxy_pass" not in line)


def caddy_config(
    folder: Path,
    public: Path,
    certs: dict[str, Path],
    *,
    name: str = "caddy-site",
    site: Edit = str,
) -> Path:
    """A docs Caddyfile; the test's certificate replaces Caddy's automatic one."""
    text = site(snippet(name)).replace("/srv/blog/public", str(public))
    text = replace(text, "blog.example {", f"{BLOG} {{\n\ttls {certs['cert']} {certs['key']}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "Caddyfile"
    path.write_text("{\n\tadmin off\n}\n\n" + text)
    return path


SETUPS: dict[str, dict[str, Any]] = {
    # setup name -> the site.toml settings it needs
    "nginx": {},
    "caddy": {},
    "nginx-daemon-only": {},
    "caddy-daemon-only": {},
    "nginx-split": {"federation_url": f"https://ap.{BLOG}"},
    "nginx-static-host": {},
}


def split(text: str) -> str:
    """The blog's block without the daemon locations, then the daemon host's block."""
    blog, _, daemon_host = text.partition(f"server_name ap.{BLOG};")
    start = blog.rindex("server {")
    return without_daemon(blog[:start]) + blog[start:] + f"server_name ap.{BLOG};" + daemon_host


class Deployment:
    """One web server and one daemon inside a namespace; ``doctor()`` checks it."""

    def __init__(self, ns: Namespace, site_dir: Path, folder: Path) -> None:
        self.ns = ns
        self.site_dir = site_dir
        self.folder = folder
        self.daemon: subprocess.Popen[bytes] | None = None
        self.server: subprocess.Popen[bytes] | None = None
        self.origin: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    def start_daemon(self, *, clock: str = "") -> None:
        argv = [sys.executable, "-m", "bridge", "serve", "--site", str(self.site_dir)]
        argv += ["--no-build", *DAEMON_ARGS]
        # libfaketime shifts the daemon's whole clock (its Date headers and signature checks);
        # preloaded directly, so that the daemon stays the process that ``stop`` ends.
        env = {"LD_PRELOAD": str(FAKETIME_LIB), "FAKETIME": clock} if clock else {}
        log = self.folder / "daemon.log"
        self.daemon = self.ns.start(argv, log, env)
        self.ns.wait_port(8000, self.daemon, log)

    def start_nginx(self, config: Path, port: int = 443) -> None:
        log = self.folder / "nginx.log"
        self.server = self.ns.start(["nginx", "-c", str(config)], log)
        self.ns.wait_port(port, self.server, log)

    def start_caddy(self, config: Path) -> None:
        log = self.folder / "caddy.log"
        argv = ["caddy", "run", "--config", str(config), "--adapter", "caddyfile"]
        self.server = self.ns.start(argv, log)
        self.ns.wait_port(443, self.server, log)

    def start_origin(self, public: Path, port: int = 8080) -> None:
        """A static host that sets no headers of its own (``.json`` as application/json)."""
        argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
        log = self.folder / "origin.log"
        self.origin = self.ns.start([*argv, "--directory", str(public)], log)
        self.ns.wait_port(port, self.origin, log)

    def start_setup(self, setup: str, certs: dict[str, Path], public: Path) -> None:
        """Start the web server of one of the ``SETUPS`` in front of the running daemon."""
        folder = self.folder / setup
        if setup == "nginx":
            self.start_nginx(nginx_config(folder, public, certs))
        elif setup == "nginx-daemon-only":
            self.start_nginx(nginx_config(folder, public, certs, site=daemon_only))
        elif setup == "nginx-split":
            names = ("nginx-site", "nginx-daemon-host")
            self.start_nginx(nginx_config(folder, public, certs, snippets=names, site=split))
        elif setup == "nginx-static-host":
            self.start_origin(public)
            config = nginx_config(folder, public, certs, snippets=("nginx-static-host",),
                                  site=lambda t: replace(t, "https://me.github.io",
                                                         "http://127.0.0.1:8080"))  # fmt: skip
            self.start_nginx(config)
        elif setup == "caddy":
            self.start_caddy(caddy_config(folder, public, certs))
        elif setup == "caddy-daemon-only":
            self.start_caddy(caddy_config(folder, public, certs, name="caddy-daemon-only"))
        else:
            raise ValueError(setup)

    def stop_server(self) -> None:
        stop(self.server)
        stop(self.origin)
        self.server = self.origin = None

    def stop(self) -> None:
        self.stop_server()
        stop(self.daemon)
        self.daemon = None

    def doctor(self, *args: str, site: Path | None = None) -> tuple[int, dict[str, Any]]:
        """`indiebridge doctor --json` inside the namespace, in the site (or ``site``)."""
        folder = str(site or self.site_dir)
        argv = [sys.executable, "-m", "bridge", "doctor", "--site", folder, "--json"]
        started = time.monotonic()
        done = self.ns.run([*argv, *args])
        if not done.stdout.startswith("{"):
            raise AssertionError(f"doctor failed: {done.stdout}{done.stderr}")
        report: dict[str, Any] = json.loads(done.stdout)
        report["seconds"] = round(time.monotonic() - started, 2)
        return done.returncode, report


FETCH = """\
import sys, httpx
response = httpx.get(sys.argv[1], headers={"Accept": "text/html"}, timeout=10)
sys.stdout.write(f"{response.status_code}\\n{response.text}")
"""


def served(ns: Namespace, url: str) -> tuple[int, str]:
    """GET ``url`` from inside the namespace, as a browser there would (TLS verified)."""
    done = ns.run([sys.executable, "-c", FETCH, url])
    status, _, body = done.stdout.partition("\n")
    assert status.isdigit(), done.stderr
    return int(status), body


def build_site(site_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "build", "--site", str(site_dir)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode:
        raise AssertionError(done.stdout + done.stderr)


def copy_public(site_dir: Path, dest: Path, *, skip: tuple[str, ...] = ()) -> Path:
    """A copy of the built folder as a blogger might upload it (``skip`` left behind)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(site_dir / "public", dest, ignore=shutil.ignore_patterns(*skip))
    return dest
