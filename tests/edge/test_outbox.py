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


def test_pending_sends_events_first_then_health_then_telemetry_each_oldest_first(
    tmp_path: Path,
) -> None:
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        body = State(online=True)  # the lane depends on the kind only
        kinds = [MessageKind.TELEMETRY, MessageKind.HEALTH, MessageKind.EVENT] * 2
        seqs = outbox.append_many([(kind, body) for kind in kinds])

        rows = outbox.pending()

        assert [(r.kind, r.lane) for r in rows] == [
            (MessageKind.EVENT, 0),
            (MessageKind.EVENT, 0),
            (MessageKind.HEALTH, 1),
            (MessageKind.HEALTH, 1),
            (MessageKind.TELEMETRY, 2),
            (MessageKind.TELEMETRY, 2),
        ]
        assert [r.seq for r in rows] == [seqs[2], seqs[5], seqs[1], seqs[4], seqs[0], seqs[3]]


def test_a_live_share_of_each_batch_goes_to_the_newest_telemetry(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        backlog = outbox.append_many([(MessageKind.TELEMETRY, State(online=True))] * 20)
        event = outbox.append(MessageKind.EVENT, State(online=True))

        rows = outbox.pending(limit=9, live_share=0.25)

        # the event first; of the 8 places left, 2 for the newest telemetry, 6 for the oldest
        assert [r.seq for r in rows] == [event, *backlog[:6], backlog[18], backlog[19]]
        assert [r.seq for r in outbox.pending(limit=30, live_share=0.25)] == [event, *backlog]


def test_append_many_takes_consecutive_seqs_and_ack_many_deletes_in_one_go(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.sqlite3"
    with Outbox(path) as outbox:
        outbox.next_seq()
        seqs = outbox.append_many([(MessageKind.STATE, State(online=i % 2 == 0)) for i in range(5)])
        assert outbox.append_many([]) == []
        outbox.ack_many([seqs[0], seqs[3], seqs[3], 999])
    with Outbox(path) as outbox:
        rows = outbox.pending()

    assert seqs == [1, 2, 3, 4, 5]
    assert [r.seq for r in rows] == [2, 3, 5]
    assert [State.model_validate_json(r.body).online for r in rows] == [False, True, True]


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
