"""Escalation: an open level I or II alert nobody acknowledged moves from the school to the
district and then the city after configurable delays; acknowledging or resolving stops it (the
transition table allows ``escalate`` only from ``open``). Every step is an ``escalate`` change
on the alert, so the stream and the alert's history show it."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_hub.alerts.lifecycle import TIERS, AlertState, Transition
from cloud_hub.db import alerts
from cloud_hub.db.alerts import HUB_ACTOR
from cloud_hub.db.base import write_transaction
from cloud_hub.db.models import Alert
from cloud_hub.settings import EscalationSettings


class Escalation:
    """Escalates what is due, in one transaction per pass."""

    def __init__(self, sessions: sessionmaker[Session], settings: EscalationSettings) -> None:
        self._sessions = sessions
        self.settings = settings
        # delay from opening to reach each tier after the school's
        self._delays = [settings.district_after_s, settings.city_after_s]

    def run(self, *, now: datetime) -> int:
        """Escalate every open alert that waited long enough; returns how many steps were taken."""
        levels = [level.value for level in self.settings.levels]
        steps = 0
        with write_transaction(self._sessions) as session:
            for tier, delay_s in enumerate(self._delays):
                due = (
                    select(Alert)
                    .where(
                        Alert.state == AlertState.OPEN.value,
                        Alert.severity.in_(levels),
                        Alert.escalation_tier == tier,
                        Alert.opened_at <= now - timedelta(seconds=delay_s),
                    )
                    .with_for_update(skip_locked=True)
                )
                for alert in session.scalars(due):
                    comment = (
                        f"to the {TIERS[tier + 1]}: unacknowledged for "
                        f"{(now - alert.opened_at).total_seconds():.0f} s"
                    )
                    alerts.apply(
                        session,
                        alert=alert,
                        transition=Transition.ESCALATE,
                        actor=HUB_ACTOR,
                        at=now,
                        comment=comment,
                    )
                    steps += 1
        return steps
