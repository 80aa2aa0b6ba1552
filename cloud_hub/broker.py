"""Mosquitto for the hub tier: TLS, per-gateway passwords, the gateway ACL, a supervised process.

The ACL is the isolation boundary of the wire contract: gateway ``<id>`` (its MQTT username) may
publish only under ``campus/v1/<id>/up/#`` and read only ``campus/v1/<id>/down/#`` and the hub's
session marker; the hub user reads every uplink and writes every downlink and that marker. The
hub listener speaks TLS (1.2 or later) with a development CA made for the broker. Tests and the
demo use exactly this config.
"""

from __future__ import annotations

import getpass
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from campus_protocol.topics import HUB_SESSION_TOPIC, TOPIC_ROOT, validate_node_id
from cloud_hub.broker_access import merge_password_file, mosquitto_password_hash
from cloud_hub.certs import DevCertificates, make_dev_certificates

HUB_USERNAME = "hub"


class BrokerError(RuntimeError):
    """Mosquitto is missing, refused its config, or did not start listening in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def acl_text(*hub_usernames: str) -> str:
    """The ACL file: the hub users (``hub`` unless named) see all uplinks and keep the session
    marker; every other user only its own subtree, and reads the marker."""
    hubs = "".join(
        f"user {username}\ntopic read {TOPIC_ROOT}/+/up/#\ntopic write {TOPIC_ROOT}/+/down/#\n"
        f"topic write {HUB_SESSION_TOPIC}\n\n"
        for username in hub_usernames or (HUB_USERNAME,)
    )
    return (
        hubs + "# every gateway: its MQTT username is its node id\n"
        f"pattern write {TOPIC_ROOT}/%u/up/#\n"
        f"pattern read {TOPIC_ROOT}/%u/down/#\n"
        "# every client (gateways, regional hubs) waits for the hub's session before sending\n"
        f"pattern read {HUB_SESSION_TOPIC}\n"
    )


#: the site listener (a school's LAN broker) may use any topic but the hub's wire contract
SITE_ACL = (
    "# anonymous site clients: devices publish anywhere except the hub's wire contract\n"
    f"topic deny {TOPIC_ROOT.split('/')[0]}/#\n"
    "topic readwrite #\n"
)
#: QoS 1 messages the broker may have unacknowledged at one client (Mosquitto's default is 20)
HUB_INFLIGHT_MESSAGES = 1000


def persistence_lines(location: Path | str, *, every_change: bool = True) -> list[str]:
    """Persist QoS 1 messages and sessions promptly: save the store after every change.

    Mosquitto 2.0 acknowledges a QoS 1 PUBLISH before it writes it to disk and saves its whole
    in-memory store at each autosave. ``autosave_on_changes`` with ``autosave_interval 1`` saves
    after every change, so a ``kill -9`` or power cut loses at most the message being saved; the
    cost is a rewrite of the store per change, measured in docs/BENCHMARKS.md. A time-based
    autosave (Mosquitto's default, 1800 s; 60 s in many deployments) loses every message that
    arrived since the last save.
    """
    where = ["persistence true", f"persistence_location {str(location).rstrip('/')}/"]
    if not every_change:  # the time-based autosave, for comparison (bench/broker_durability.py)
        return [*where, "autosave_interval 60"]
    return [*where, "autosave_on_changes true", "autosave_interval 1"]


def write_password_file(path: Path, users: dict[str, str]) -> None:
    """Set ``users``' passwords (hashed) in a Mosquitto password file; lines of other users (the
    gateways the hub provisioned) are kept."""
    granted = {user: mosquitto_password_hash(password) for user, password in users.items()}
    merge_password_file(path, granted=granted, managed=set())


@dataclass
class MosquittoBroker:
    """A Mosquitto process with its own config in ``workdir``.

    ``port`` is the hub listener (passwords + ACL, and TLS unless ``tls=False``, which is for
    quick debugging only): clients trust ``ca_file``. ``site_port``, when set, is a plain anonymous
    listener standing in for a school's local broker (its LAN) that MQTT devices publish to.
    """

    workdir: Path
    gateways: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    site_port: int | None = 0
    hub_username: str = HUB_USERNAME
    hub_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    #: more hub ingest workers, each its own username (client id = username on this listener)
    hub_workers: list[str] = field(default_factory=list)
    tls: bool = True
    save_every_change: bool = True
    _certificates: DevCertificates | None = field(default=None, init=False)
    _passwords: dict[str, str] = field(default_factory=dict, init=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if shutil.which("mosquitto") is None:
            raise BrokerError("mosquitto not found on PATH: install the Debian package 'mosquitto'")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        if self.site_port == 0:
            self.site_port = free_port(self.host)
        for user in [*self.gateways, *self.hub_workers]:
            self._passwords[validate_node_id(user)] = secrets.token_urlsafe(18)
        if self.tls:
            hosts = list(dict.fromkeys([self.host, "127.0.0.1", "localhost"]))
            self._certificates = make_dev_certificates(self.workdir / "tls", hosts)

    @property
    def ca_file(self) -> Path | None:
        """The CA certificate hub-listener clients must trust; ``None`` when TLS is off."""
        return self._certificates.ca_file if self._certificates else None

    def password_for(self, gateway: str) -> str:
        return self._passwords[gateway]

    def add_gateway(self, gateway: str) -> str:
        """Provision a gateway's password; takes effect on the next start or reload."""
        self._passwords[validate_node_id(gateway)] = secrets.token_urlsafe(18)
        self._write_auth()
        if self.running:
            self.reload()
        return self._passwords[gateway]

    @property
    def password_file(self) -> Path:
        """The hub listener's password file (the hub's gateway provisioning writes here too)."""
        return self.workdir / "passwd"

    @property
    def pid_file(self) -> Path:
        """Holds the running Mosquitto's pid, for whoever must reload it (SIGHUP)."""
        return self.workdir / "mosquitto.pid"

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def write_config(self) -> None:
        self._write_auth()
        lines = [
            # run as the invoking user: as root, Mosquitto would switch to 'mosquitto' and lose
            # access to this workdir
            f"user {getpass.getuser()}",
            "per_listener_settings true",
            *persistence_lines(self.workdir, every_change=self.save_every_change),
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "max_queued_messages 100000",
            # the hub acknowledges only after its batch commits: let a batch be in flight
            f"max_inflight_messages {HUB_INFLIGHT_MESSAGES}",
            "",
            f"listener {self.port} {self.host}",
            "allow_anonymous false",
            # client id = username: nobody can take the hub's session or another gateway's
            "use_username_as_clientid true",
            f"password_file {self.workdir / 'passwd'}",
            f"acl_file {self.workdir / 'acl'}",
        ]
        if self._certificates is not None:
            lines += [
                f"cafile {self._certificates.ca_file}",
                f"certfile {self._certificates.cert_file}",
                f"keyfile {self._certificates.key_file}",
                "tls_version tlsv1.2",
            ]
        if self.site_port:
            lines += [
                "",
                f"listener {self.site_port} {self.host}",
                "allow_anonymous true",
                f"acl_file {self.workdir / 'site-acl'}",
            ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _write_auth(self) -> None:
        write_password_file(
            self.workdir / "passwd", {self.hub_username: self.hub_password, **self._passwords}
        )
        (self.workdir / "acl").write_text(acl_text(self.hub_username, *self.hub_workers))
        (self.workdir / "site-acl").write_text(SITE_ACL)

    def start(self, timeout_s: float = 10.0) -> None:
        """Start Mosquitto and wait until every listener accepts connections."""
        if self.running:
            return
        self.write_config()
        self._process = subprocess.Popen(
            ["mosquitto", "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches only its owner, which stops it in order
        )
        self.pid_file.write_text(f"{self._process.pid}\n")
        ports = [self.port] + ([self.site_port] if self.site_port else [])
        deadline = time.monotonic() + timeout_s
        while not all(_accepts(self.host, p) for p in ports):
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise BrokerError(
                    f"mosquitto exited with {self._process.returncode}: {err.strip()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"mosquitto did not listen on {ports} within {timeout_s} s")
            time.sleep(0.02)

    def reload(self) -> None:
        """Re-read the password and ACL files (SIGHUP)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGHUP)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop cleanly (SIGTERM): Mosquitto saves retained messages and sessions."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._close_pipes()

    def kill(self) -> None:
        """Power-cut the broker (SIGKILL): nothing is saved beyond the last autosave."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._close_pipes()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _close_pipes(self) -> None:
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False
