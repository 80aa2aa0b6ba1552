"""Webhook notifications of alert transitions: at least once, signed, retried, logged.

Ingest never waits for a webhook: it only writes ``AlertChange`` rows. ``Notifier.enqueue`` turns
new changes into ``WebhookDelivery`` rows (one per webhook whose levels match; a unique key makes a
second hub process's enqueue harmless), and ``Notifier.send_due`` POSTs what is due outside any
transaction, then records the outcome: delivered on a 2xx answer, else retried after a doubling
back-off (capped at ``MAX_BACKOFF_S``) until ``max_attempts``, then ``failed``. Each request
carries ``Idempotency-Key: alert-<alert id>-<transition>-<change id>`` (the same on every retry),
``X-Campus-Signature: sha256=<HMAC-SHA256 of the body>`` and ``X-Campus-Delivery: <id>``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from prometheus_client import Counter
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cloud_hub.db.base import dialect_insert, write_transaction
from cloud_hub.db.models import Alert, AlertChange, WebhookDelivery
from cloud_hub.settings import WebhookSettings

log = logging.getLogger(__name__)

WEBHOOK_DELIVERIES = Counter(
    "campus_webhook_deliveries_total", "Webhook delivery attempts", ["webhook", "outcome"]
)
MAX_BACKOFF_S = 300.0
BATCH = 100
UNIQUE_DELIVERY = ["webhook", "alert_change_id"]


def signature(secret: str, body: bytes) -> str:
    """The ``X-Campus-Signature`` value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Notifier:
    def __init__(
        self, sessions: sessionmaker[Session], webhooks: Sequence[WebhookSettings]
    ) -> None:
        self._sessions = sessions
        self.webhooks = {w.name: w for w in webhooks}

    def enqueue(self, *, now: datetime) -> int:
        """Queue the alert changes each webhook has not queued yet; returns how many rows."""
        queued = 0
        with write_transaction(self._sessions) as session:
            for hook in self.webhooks.values():
                after = session.scalar(
                    select(func.max(WebhookDelivery.alert_change_id)).where(
                        WebhookDelivery.webhook == hook.name
                    )
                )
                query = (
                    select(AlertChange, Alert)
                    .join(Alert, Alert.id == AlertChange.alert_id)
                    .where(
                        AlertChange.id > (after or 0),
                        Alert.severity.in_([level.value for level in hook.levels]),
                    )
                    .order_by(AlertChange.id)
                    .limit(BATCH * 10)
                )
                rows = [
                    _delivery(hook.name, change, alert, now)
                    for change, alert in session.execute(query)
                ]
                if rows:
                    insert = dialect_insert(session, WebhookDelivery)
                    session.execute(
                        insert.on_conflict_do_nothing(
                            index_elements=["webhook", "alert_change_id"]
                        ),
                        rows,
                    )
                    queued += len(rows)
        return queued

    def send_due(self, *, now: datetime, client: httpx.Client) -> int:
        """POST every delivery that is due; returns how many were attempted."""
        with self._sessions() as session:
            due = session.scalars(
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.state == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                    WebhookDelivery.webhook.in_(self.webhooks),
                )
                .order_by(WebhookDelivery.id)
                .limit(BATCH)
            ).all()
        for delivery in due:
            status, error = self._post(client, delivery)
            self._record(delivery.id, status, error, now)
        return len(due)

    def _post(self, client: httpx.Client, delivery: WebhookDelivery) -> tuple[int | None, str]:
        hook = self.webhooks[delivery.webhook]
        body = delivery.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": delivery.idempotency_key,
            "X-Campus-Signature": signature(hook.secret.get_secret_value(), body),
            "X-Campus-Delivery": str(delivery.id),
        }
        try:
            response = client.post(hook.url, content=body, headers=headers, timeout=hook.timeout_s)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= response.status_code < 300:
            return response.status_code, ""
        return response.status_code, response.text[:500]

    def _record(self, delivery_id: int, status: int | None, error: str, now: datetime) -> None:
        with write_transaction(self._sessions) as session:
            delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
            if delivery is None or delivery.state != "pending":
                return
            hook = self.webhooks[delivery.webhook]
            delivery.attempts += 1
            delivery.last_status, delivery.last_error = status, error
            if status is not None and 200 <= status < 300:
                delivery.state, delivery.delivered_at = "delivered", now
                outcome = "delivered"
            elif delivery.attempts >= hook.max_attempts:
                delivery.state, outcome = "failed", "failed"
                log.error(
                    "webhook %s gave up on %s: %s",
                    hook.name,
                    delivery.idempotency_key,
                    error or status,
                )
            else:
                backoff = min(MAX_BACKOFF_S, 2.0 ** (delivery.attempts - 1))
                delivery.next_attempt_at = now + timedelta(seconds=backoff)
                outcome = "retry"
            WEBHOOK_DELIVERIES.labels(webhook=hook.name, outcome=outcome).inc()

    async def run(self, interval_s: float = 1.0) -> None:
        """Enqueue and send until cancelled; a database or network error waits for the next turn."""
        with httpx.Client() as client:
            while True:
                try:
                    now = datetime.now(UTC)
                    await asyncio.to_thread(self.enqueue, now=now)
                    await asyncio.to_thread(self.send_due, now=now, client=client)
                except SQLAlchemyError as exc:
                    log.warning("webhook notifier: %s", exc)
                await asyncio.sleep(interval_s)


def _delivery(webhook: str, change: AlertChange, alert: Alert, now: datetime) -> dict[str, object]:
    payload = {
        "alert_id": alert.id,
        "transition": change.transition,
        "from_state": change.from_state,
        "to_state": change.to_state,
        "actor": change.actor,
        "comment": change.comment,
        "at": change.at.isoformat(),
        "level": alert.severity,
        "school_id": alert.school_id,
        "gateway_id": alert.gateway_id,
        "device": alert.device,
        "rule": alert.rule,
        "message": alert.message,
        "value": alert.value,
        "threshold": alert.threshold,
        "occurrences": alert.occurrences,
    }
    return {
        "webhook": webhook,
        "alert_change_id": change.id,
        "idempotency_key": f"alert-{alert.id}-{change.transition}-{change.id}",
        "payload": orjson.dumps(payload).decode()[:4000],
        "state": "pending",
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
        "last_error": "",
    }
