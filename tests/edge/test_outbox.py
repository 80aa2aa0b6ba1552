"""The SQLite outbox: durable seq, ack-then-delete, seq order."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from campus_protocol.messages import MessageKind, State
from edge_agent.outbox import Outbox


def test_seq_strictly_increases_across_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path) as outbox:
        first = [outbox.append(MessageKind.STATE, State(online=True)) for _ in range(3)]
        for seq in first:
            outbox.ack(seq)
    with Outbox(path) as outbox:
        later = outbox.append(MessageKind.STATE, State(online=False))
        direct = outbox.next_seq()

    assert first == [0, 1, 2]
    assert later == 3, "seqs of acked (deleted) rows are never reused"
    assert direct == 4


def test_an_outbox_keeps_its_epoch_and_a_new_file_gets_a_new_one(tmp_path: Path) -> None:
    with Outbox(tmp_path / "a.sqlite3") as outbox:
        epoch = outbox.epoch
    with Outbox(tmp_path / "a.sqlite3") as outbox:
        reopened = outbox.epoch
    with Outbox(tmp_path / "b.sqlite3") as outbox:
        replaced = outbox.epoch

    assert reopened == epoch
    assert replaced != epoch, "a replaced gateway (new outbox) must never reuse old claims"


def test_pending_returns_rows_in_seq_order_and_ack_deletes(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        seqs = [outbox.append(MessageKind.STATE, State(online=i % 2 == 0)) for i in range(5)]
        outbox.ack(seqs[1])
        outbox.ack(seqs[1])  # acking twice is harmless

        rows = outbox.pending(limit=3)

        assert [r.seq for r in rows] == [0, 2, 3]
        assert rows[0].kind is MessageKind.STATE
        assert State.model_validate_json(rows[0].body) == State(online=True)
        assert outbox.depth() == 4


def test_rows_left_from_the_last_run_are_pending_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    with Outbox(path) as outbox:
        outbox.append(MessageKind.STATE, State(online=True))
    with Outbox(path) as outbox:
        outbox.append(MessageKind.STATE, State(online=False))
        assert [r.seq for r in outbox.pending()] == [0, 1]


def test_rows_carry_their_priority_lane_event_health_telemetry(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        body = State(online=True)  # the lane depends on the kind only
        for kind in (MessageKind.TELEMETRY, MessageKind.HEALTH, MessageKind.EVENT):
            outbox.append(kind, body)

        assert [(r.kind, r.lane) for r in outbox.pending()] == [
            (MessageKind.TELEMETRY, 2),
            (MessageKind.HEALTH, 1),
            (MessageKind.EVENT, 0),
        ]


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    Outbox(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


def test_discard_deletes_the_row(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        outbox.append(MessageKind.STATE, State(online=True))
        (row,) = outbox.pending()
        outbox.discard(row, "too_large")
        assert outbox.depth() == 0
        assert outbox.stats().last_seq == 0
