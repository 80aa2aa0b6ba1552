"""Gateway access on the hub broker: Mosquitto's password file, rewritten and reloaded.

The hub owns the lines of the gateways it provisions (``GatewayAccess`` rows) and leaves every
other line alone (the hub's own user, hand-made accounts). Mosquitto re-reads the file on SIGHUP
and, on that reload, disconnects every client whose password no longer checks out, so a revoked
gateway is cut off at once, mid-connection. Hashes are Mosquitto's own ``$7$`` format
(PBKDF2-SHA512), made here so the plain password never touches the disk.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import signal
from collections.abc import Mapping, Set
from pathlib import Path

MOSQUITTO_ITERATIONS = 101  # mosquitto_passwd's default in Mosquitto 2.0
_SALT_BYTES = 12


class BrokerAccessError(RuntimeError):
    """The password file could not be written, or the broker could not be told to reload."""


def mosquitto_password_hash(password: str, *, iterations: int = MOSQUITTO_ITERATIONS) -> str:
    """``$7$<iterations>$<salt>$<hash>``, as ``mosquitto_passwd`` writes it."""
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def merge_password_file(path: Path, *, granted: Mapping[str, str], managed: Set[str]) -> None:
    """Rewrite ``path`` atomically: lines of users outside ``managed`` stay as they are, and each
    user in ``granted`` (username -> hash) gets its line; managed users not granted lose theirs."""
    kept = []
    if path.exists():
        for line in path.read_text().splitlines():
            user = line.split(":", 1)[0]
            if line.strip() and user not in managed and user not in granted:
                kept.append(line)
    lines = kept + [f"{user}:{digest}" for user, digest in sorted(granted.items())]
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        scratch.write_text("".join(f"{line}\n" for line in lines))
        scratch.chmod(0o600)
        scratch.replace(path)
    except OSError as exc:
        raise BrokerAccessError(f"cannot write the broker password file {path}: {exc}") from None


def reload_broker(pid_file: Path) -> None:
    """Send SIGHUP to the Mosquitto whose pid ``pid_file`` holds."""
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        raise BrokerAccessError(f"cannot reload the broker (pid file {pid_file}): {exc}") from None
