"""``campus agent doctor``: the checks, each giving one finding and, for a problem, one line of
advice. They read and connect, and never change anything: the doctor publishes nothing, takes
the agent's client id never, and opens the outbox only to count it.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import httpx
from paho.mqtt.reasoncodes import ReasonCode

from campus_config import HubBrokerSettings
from campus_forward.outbox import Outbox
from campus_protocol.topics import node_downlink_subscription
from edge_agent.app import OUTBOX_FILE
from edge_agent.settings import AgentSettings

#: below either, the outbox may run out of room during a long uplink outage
MIN_FREE_BYTES = 200 * 1024**2
MIN_FREE_FRACTION = 0.05
#: a waiting row older than this means the uplink is not draining
STALE_OUTBOX_S = 300.0
#: a clock before this is certainly wrong (this code did not exist yet)
EARLIEST_PLAUSIBLE = datetime(2026, 1, 1, tzinfo=UTC)
#: the MQTT CONNECT a plain probe sends: protocol MQTT 3.1.1, clean session, client id "doctor"
_PLAIN_CONNECT = bytes.fromhex("101200044d5154540402000a0006646f63746f72")
CONNACK = b"\x20"
TLS_ALERT = b"\x15"


@dataclass(frozen=True)
class Finding:
    """What one check saw; ``advice`` (one line) only when it is a problem."""

    check: str
    detail: str
    advice: str = ""

    @property
    def ok(self) -> bool:
        return not self.advice


def _where(hub: HubBrokerSettings) -> str:
    return f"{hub.host}:{hub.port}"


def _tls_context(hub: HubBrokerSettings) -> ssl.SSLContext:
    assert hub.tls is not None
    context = ssl.create_default_context(cafile=str(hub.tls.ca_file))
    if hub.tls.cert_file is not None:
        context.load_cert_chain(
            str(hub.tls.cert_file), str(hub.tls.key_file) if hub.tls.key_file else None
        )
    return context


async def check_reachable(hub: HubBrokerSettings, timeout_s: float) -> Finding:
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(hub.host, hub.port)
    except (OSError, TimeoutError) as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        return Finding(
            "hub broker", f"cannot reach {_where(hub)} ({reason})",
            "check hub.host and hub.port, that the hub broker runs, and that the firewall lets "
            "the gateway out",
        )  # fmt: skip
    writer.close()
    return Finding("hub broker", f"{_where(hub)} accepts connections")


async def check_transport(hub: HubBrokerSettings, timeout_s: float) -> Finding:
    """TLS when ``hub.tls`` is set, plain MQTT otherwise: a mismatch is named as such."""
    if hub.tls is not None:
        return await _check_tls(hub, timeout_s)
    return await _check_plain(hub, timeout_s)


async def _check_tls(hub: HubBrokerSettings, timeout_s: float) -> Finding:
    try:
        context = _tls_context(hub)
    except (OSError, ssl.SSLError) as exc:
        return Finding(
            "tls",
            f"cannot load hub.tls files ({exc})",
            "check the paths and permissions of hub.tls.ca_file / cert_file / key_file",
        )
    try:
        async with asyncio.timeout(timeout_s):
            _, writer = await asyncio.open_connection(
                hub.host, hub.port, ssl=context, server_hostname=hub.host
            )
    except ssl.SSLCertVerificationError as exc:
        message = exc.verify_message or str(exc)
        if "expired" in message or "not yet valid" in message:
            advice = "check the gateway's clock (see below), then the certificate's dates"
        elif "hostname" in message.lower() or "IP address mismatch" in message:
            advice = "set hub.host to the name the broker's certificate was issued for"
        else:
            ca_file = hub.tls.ca_file if hub.tls else ""
            advice = (
                f"hub.tls.ca_file ({ca_file}) is not the CA that signed the broker's "
                "certificate: get the right CA file from the hub"
            )
        return Finding("tls", f"{_where(hub)}: certificate refused ({message})", advice)
    except (ssl.SSLError, ConnectionError, TimeoutError, asyncio.IncompleteReadError) as exc:
        return Finding(
            "tls", f"TLS/plain mismatch: {_where(hub)} does not speak TLS "
            f"({type(exc).__name__}: {exc or 'no answer'})",
            "hub.tls is set but this port is plain MQTT: use the broker's TLS port (often "
            "8883) or remove hub.tls",
        )  # fmt: skip
    writer.close()
    return Finding("tls", f"{_where(hub)} speaks TLS and its certificate is trusted")


async def _check_plain(hub: HubBrokerSettings, timeout_s: float) -> Finding:
    reply = b""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(hub.host, hub.port)
            writer.write(_PLAIN_CONNECT)
            await writer.drain()
            reply = await reader.read(4)
            writer.close()
    except (OSError, TimeoutError):
        pass
    if reply[:1] == CONNACK:
        return Finding("tls", f"{_where(hub)} speaks plain MQTT (no TLS configured)")
    seen = "a TLS alert" if reply[:1] == TLS_ALERT else "no MQTT reply"
    return Finding(
        "tls", f"TLS/plain mismatch: {_where(hub)} did not answer plain MQTT ({seen})",
        "this port expects TLS: set hub.tls.ca_file to the hub's CA file (or use the plain port)",
    )  # fmt: skip


async def agent_connected(settings: AgentSettings, timeout_s: float) -> bool:
    """Whether this gateway's agent runs and is connected, as its status page says."""
    if not settings.status_port:
        return False
    url = f"http://{settings.status_host}:{settings.status_port}/status"
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(url, timeout=timeout_s)
        return bool(response.json().get("uplink_connected"))
    except (httpx.HTTPError, ValueError):
        return False


async def check_login(settings: AgentSettings, timeout_s: float) -> list[Finding]:
    """Log in as the gateway, then subscribe to its own downlink topics, which the ACL must
    allow. The broker makes the client id the username, so this would take a running agent's
    connection over: when the agent is connected (its status page says so) its login stands
    as the proof instead."""
    if await agent_connected(settings, timeout_s):
        return [
            Finding("credentials", "the running agent is logged in (its status page says so)"),
            Finding("acl", "not checked while the agent is connected (stop it to check)"),
        ]
    hub, node = settings.hub, settings.gateway.id
    client = aiomqtt.Client(
        hub.host, hub.port,
        username=hub.username or node, password=hub.password.get_secret_value() or None,
        identifier=node,
        protocol=aiomqtt.ProtocolVersion.V5, timeout=timeout_s,
        tls_context=_tls_context(hub) if hub.tls is not None else None,
    )  # fmt: skip
    topic = node_downlink_subscription(node)
    try:
        async with client:
            granted = await client.subscribe(topic, qos=1)
    except aiomqtt.MqttCodeError as exc:
        if exc.rc in (4, 5, 134, 135):  # bad user name or password / not authorised
            return [Finding(
                "credentials", f"the hub broker refused gateway {node!r} ({exc})",
                f"hub.password must be {node}'s password in the broker's password file "
                "(and the username the gateway id)",
            )]  # fmt: skip
        return [Finding("credentials", f"login failed ({exc})", "see the hub broker's log")]
    except aiomqtt.MqttError as exc:
        return [Finding("credentials", f"login failed ({exc})", "see the hub broker's log")]
    login = Finding("credentials", f"gateway {node!r} logs in")
    codes = [code.value if isinstance(code, ReasonCode) else int(code) for code in granted]
    if any(code >= 0x80 for code in codes):
        return [login, Finding(
            "acl", f"the broker refuses {node!r} reading {topic}",
            "the ACL must have 'pattern read campus/v1/%u/down/#' (and write .../up/#)",
        )]  # fmt: skip
    return [login, Finding("acl", f"{node!r} may read its downlink topics ({topic})")]


def check_clock(now: datetime, synchronised: bool | None) -> Finding:
    """``synchronised`` is what time sync reports, None when it cannot be asked."""
    shown = now.isoformat(timespec="seconds")
    if now < EARLIEST_PLAUSIBLE:
        return Finding(
            "clock",
            f"the clock reads {shown}",
            "set the date and enable time sync (timedatectl set-ntp true): TLS "
            "certificates and reading timestamps depend on it",
        )
    if synchronised is False:
        return Finding(
            "clock",
            f"{shown}, not synchronised",
            "enable time sync (timedatectl set-ntp true, or chrony)",
        )
    state = "synchronised" if synchronised else "time sync status unknown"
    return Finding("clock", f"{shown} ({state})")


def time_synchronised() -> bool | None:
    """What systemd says about time sync, or None without systemd (containers, tests)."""
    tool = shutil.which("timedatectl")
    if tool is None:
        return None
    result = subprocess.run(
        [tool, "show", "-p", "NTPSynchronized", "--value"],
        capture_output=True, text=True, timeout=5, check=False,
    )  # fmt: skip
    answer = result.stdout.strip()
    return {"yes": True, "no": False}.get(answer) if result.returncode == 0 else None


def check_disk(path: Path, *, free: int, total: int) -> Finding:
    mib = free // 1024**2
    if free < MIN_FREE_BYTES or free < total * MIN_FREE_FRACTION:
        return Finding(
            "disk",
            f"only {mib} MiB free for {path}",
            "free space or move data_dir: the outbox holds readings while the uplink is down",
        )
    return Finding("disk", f"{mib} MiB free for {path}")


def disk_space(path: Path) -> tuple[Path, int, int]:
    """The nearest existing directory at or above ``path``, its free and total bytes."""
    existing = path
    while not existing.exists():
        existing = existing.parent
    usage = shutil.disk_usage(existing)
    return existing, usage.free, usage.total


def check_outbox(path: Path, now: float) -> Finding:
    if not path.exists():
        return Finding("outbox", f"no outbox at {path} yet (the agent has not run)")
    with Outbox(path) as outbox:
        stats = outbox.stats()
    if stats.depth and stats.oldest_created_at is not None:
        age = now - stats.oldest_created_at
        if age > STALE_OUTBOX_S:
            return Finding(
                "outbox", f"{stats.depth} messages waiting, the oldest for {age / 60:.0f} min",
                "the uplink is not draining: fix the hub broker problems above (data is kept "
                "and goes out once it reconnects)",
            )  # fmt: skip
    return Finding("outbox", f"{stats.depth} messages waiting")


async def examine(settings: AgentSettings, *, timeout_s: float = 3.0) -> list[Finding]:
    """Every check after the config: the broker path in order, then the gateway itself."""
    findings = [await check_reachable(settings.hub, timeout_s)]
    if findings[-1].ok:
        findings.append(await check_transport(settings.hub, timeout_s))
        if findings[-1].ok:
            findings.extend(await check_login(settings, timeout_s))
    findings.append(check_clock(datetime.now(UTC), time_synchronised()))
    where, free, total = disk_space(settings.data_dir)
    findings.append(check_disk(where, free=free, total=total))
    findings.append(check_outbox(settings.data_dir / OUTBOX_FILE, time.time()))
    return findings
