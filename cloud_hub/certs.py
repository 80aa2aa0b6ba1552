"""Development certificates for the hub broker's TLS listener, made with the ``openssl`` CLI.

A throw-away CA and one server certificate signed by it (EC P-256: fast to generate), valid for
the given host names and IP addresses. Tests and the demo use them; a real deployment uses
certificates from the bureau's own CA (see ``deploy/make-dev-certs.sh`` for docker compose).
"""

from __future__ import annotations

import ipaddress
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOSTS = ("127.0.0.1", "localhost")

_CA_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
O = campus-iot dev
CN = campus-iot dev CA
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""

_SERVER_EXTENSIONS = """\
subjectAltName = {san}
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
"""


class CertificateError(RuntimeError):
    """``openssl`` is missing or refused to make a key or certificate."""


@dataclass(frozen=True)
class DevCertificates:
    """PEM files: the CA clients trust, and the server's certificate and private key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def subject_alt_names(hosts: Sequence[str]) -> str:
    """``IP:`` entries for addresses, ``DNS:`` entries for names, comma-separated."""
    entries = []
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            entries.append(f"DNS:{host}")
        else:
            entries.append(f"IP:{host}")
    return ",".join(entries)


def make_dev_certificates(
    directory: Path, hosts: Sequence[str] = DEFAULT_HOSTS, days: int = 30
) -> DevCertificates:
    """Write ``ca.crt``, ``ca.key``, ``server.crt`` and ``server.key`` (0600) to ``directory``."""
    if not hosts:
        raise ValueError("hosts: at least one host name or address is needed")
    directory.mkdir(parents=True, exist_ok=True)
    certs = DevCertificates(
        ca_file=directory / "ca.crt",
        cert_file=directory / "server.crt",
        key_file=directory / "server.key",
    )
    ca_key = directory / "ca.key"
    ca_config = directory / "ca.cnf"
    server_csr = directory / "server.csr"
    server_ext = directory / "server.ext"
    ca_config.write_text(_CA_CONFIG)
    server_ext.write_text(_SERVER_EXTENSIONS.format(san=subject_alt_names(hosts)))
    ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    try:
        _openssl(
            "req", "-x509", "-new", *ec_key, "-sha256", "-days", str(days),
            "-config", str(ca_config), "-extensions", "ca",
            "-keyout", str(ca_key), "-out", str(certs.ca_file),
        )  # fmt: skip
        _openssl(
            "req", "-new", *ec_key, "-subj", "/O=campus-iot dev/CN=campus-iot hub broker",
            "-keyout", str(certs.key_file), "-out", str(server_csr),
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-sha256", "-days", str(days), "-in", str(server_csr),
            "-CA", str(certs.ca_file), "-CAkey", str(ca_key), "-CAcreateserial",
            "-extfile", str(server_ext), "-out", str(certs.cert_file),
        )  # fmt: skip
    finally:
        for scratch in (ca_config, server_csr, server_ext, directory / "ca.srl"):
            scratch.unlink(missing_ok=True)
    for key in (ca_key, certs.key_file):
        key.chmod(0o600)
    return certs


def _openssl(*args: str) -> None:
    tool = shutil.which("openssl")
    if tool is None:
        raise CertificateError("openssl not found on PATH: install the Debian package 'openssl'")
    result = subprocess.run([tool, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CertificateError(f"openssl {args[0]} failed: {result.stderr.strip()}")


_CLIENT_EXTENSIONS = """\
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
"""


@dataclass(frozen=True)
class ClientCertificate:
    """A gateway's client certificate and private key (PEM), and the certificate's serial."""

    cert_pem: str
    key_pem: str
    serial: str


def issue_client_certificate(ca_dir: Path, common_name: str, days: int = 365) -> ClientCertificate:
    """A client certificate for ``common_name`` (a gateway id) signed by ``ca_dir``'s ``ca.crt`` and
    ``ca.key``; the key is returned to hand over once and is not kept on the hub."""
    ca_cert, ca_key = ca_dir / "ca.crt", ca_dir / "ca.key"
    for path in (ca_cert, ca_key):
        if not path.is_file():
            raise CertificateError(f"{path}: missing (ca_dir must hold ca.crt and ca.key)")
    serial = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="campus-client-cert-") as scratch:
        work = Path(scratch)
        (work / "client.ext").write_text(_CLIENT_EXTENSIONS)
        _openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", f"/O=campus-iot/CN={common_name}",
            "-keyout", str(work / "client.key"), "-out", str(work / "client.csr"),
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-sha256", "-days", str(days), "-in", str(work / "client.csr"),
            "-CA", str(ca_cert), "-CAkey", str(ca_key), "-set_serial", f"0x{serial}",
            "-extfile", str(work / "client.ext"), "-out", str(work / "client.crt"),
        )  # fmt: skip
        return ClientCertificate(
            cert_pem=(work / "client.crt").read_text(),
            key_pem=(work / "client.key").read_text(),
            serial=serial,
        )
