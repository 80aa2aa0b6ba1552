"""Login rate limiting, counted from the audit log so every hub worker sees the same failures.

A username with ``max_per_user`` failed logins, or a source address with ``max_per_source``, in the
last ``window_s`` seconds is refused (429) before any password is hashed. Refused attempts count
as failures too, so a guesser that keeps trying stays locked out; the account's owner waits out
the window (or an administrator issues a token with ``campus hub user token``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from cloud_hub.auth.audit import Result, count_since

LOGIN_ACTION = "login"


@dataclass(frozen=True)
class LoginLimit:
    window_s: float = 300.0
    max_per_user: int = 5
    max_per_source: int = 20

    def blocked(self, session: Session, *, username: str, source: str, now: datetime) -> bool:
        """Whether a login for ``username`` from ``source`` must be refused right now."""
        since = now - timedelta(seconds=self.window_s)
        failed = Result.DENIED
        per_user = count_since(
            session, action=LOGIN_ACTION, result=failed, since=since, target=username[:200]
        )
        if per_user >= self.max_per_user:
            return True
        per_source = count_since(
            session, action=LOGIN_ACTION, result=failed, since=since, source=source[:64]
        )
        return per_source >= self.max_per_source
