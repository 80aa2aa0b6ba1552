"""Where alerts come from, turned into raises and clears: hub threshold rules on telemetry
windows, edge events, and (``cloud_hub.alerts.health``) offline devices and gateways.

``follow`` is the one place a condition becomes a transition: it raises when the condition
appears, clears when it goes, and writes nothing while it stays as it was.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from datetime import datetime

from sqlalchemy.orm import Session

from campus_protocol import Event, EventState, Telemetry
from cloud_hub.db import alerts
from cloud_hub.db.alerts import Alarm, AlertKey
from cloud_hub.db.models import AlertChange, AlertSource
from device_profiles.rules import RuleSite
from device_profiles.schema import Profile


def follow(
    session: Session,
    present: MutableMapping[AlertKey, bool],
    *,
    key: AlertKey,
    alarm: Alarm | None,
    at: datetime,
    actor: str,
) -> list[AlertChange]:
    """Raise ``alarm`` when its condition was not present, clear ``key`` when ``alarm`` is None
    and it was; ``present`` (condition by key) is read and kept up to date."""
    if alarm is not None and not present.get(key, False):
        present[key] = True
        return [alerts.raise_alert(session, alarm=alarm, actor=actor)]
    if alarm is None and present.get(key, False):
        present[key] = False
        return alerts.clear_alert(session, key=key, at=at, actor=actor)
    return []


def hub_rule_conditions(
    node: str, profile: Profile, window: Telemetry
) -> Iterator[tuple[AlertKey, Alarm | None]]:
    """Each hub rule of ``profile`` that ``window`` has a value for: its key, and the alarm when
    the rule fires (None when it does not). Edge rules are the gateway's: they arrive as events."""
    for rule in profile.alerts:
        if rule.where is not RuleSite.HUB or rule.point is None or rule.op is None:
            continue
        assert rule.threshold is not None  # a hub rule is a threshold (profile validation)
        stats = window.points.get(rule.point)
        if stats is None:
            continue
        value = float(getattr(stats, rule.stat.value))
        key = AlertKey(node, window.device, rule.id)
        if not rule.op.holds(value, rule.threshold):
            yield key, None
            continue
        yield (
            key,
            Alarm(
                key=key,
                source=AlertSource.HUB,
                point=rule.point,
                severity=rule.severity,
                at=window.window_end,
                value=value,
                threshold=rule.threshold,
                standard=rule.standard,
                message=rule.message,
            ),
        )


def apply_event(
    session: Session, present: MutableMapping[AlertKey, bool], *, node: str, event: Event
) -> list[AlertChange]:
    """An edge event: every raise is an occurrence (the gateway repeats a raise only when the
    condition repeats); a clear clears."""
    key = AlertKey(node, event.device, event.rule)
    actor = f"gateway:{node}"
    if event.state is EventState.CLEARED:
        present[key] = False
        return alerts.clear_alert(session, key=key, at=event.at, actor=actor)
    present[key] = True
    alarm = Alarm(
        key=key,
        source=AlertSource.EDGE,
        point=event.point,
        severity=event.severity,
        at=event.at,
        value=event.value,
        threshold=event.threshold,
        standard=event.standard,
        message=event.message,
    )
    return [alerts.raise_alert(session, alarm=alarm, actor=actor)]
