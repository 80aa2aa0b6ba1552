"""The SQLite outbox: durable seq, ack-then-delete, priority lanes, disk budget, corruption."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from campus_forward.outbox import Outbox, OutboxCorrupt, OutboxRow
from campus_forward.packing import BATCH_BYTES
from campus_protocol.messages import (
    Event,
    EventState,
    MessageKind,
    PointStats,
    Severity,
    State,
    Telemetry,
    TelemetryBatch,
    parse_body_json,
)


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


# --- disk budget: merge the oldest telemetry, then drop, never events ------------------------


def window(index: int, value: float, device: str = "meter-1") -> Telemetry:
    stats = PointStats(count=2, min=value, max=value + 1, mean=value + 0.5, last=value + 1)
    return Telemetry(
        device=device,
        profile="eastron_sdm120",
        room="lab-3",
        window_start=datetime.fromtimestamp(index * 10, UTC),
        window_end=datetime.fromtimestamp(index * 10 + 10, UTC),
        points={"power": stats},
    )


def event(index: int) -> Event:
    return Event(
        rule="gas-high",
        device="lab-3-gas",
        point="co",
        state=EventState.RAISED,
        severity=Severity.II,
        value=float(index),
        threshold=1,
        standard="GBZ 2.1-2019",
        at=datetime.fromtimestamp(index, UTC),
    )


def queued_windows(outbox: Outbox) -> list[Telemetry]:
    return queued_windows_of(outbox.pending(limit=100_000))


def queued_windows_of(rows: list[OutboxRow]) -> list[Telemetry]:
    windows: list[Telemetry] = []
    for row in rows:
        if row.kind is MessageKind.TELEMETRY:
            body = parse_body_json(row.kind, row.body)
            windows += body.windows if isinstance(body, TelemetryBatch) else [body]  # type: ignore[list-item,attr-defined]
    return windows


def test_over_budget_the_oldest_telemetry_is_merged_with_its_totals_exact(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3", budget_bytes=40_000, merge_window_s=300) as outbox:
        for i in range(0, 300, 10):
            outbox.append_many([(MessageKind.TELEMETRY, window(j, j)) for j in range(i, i + 10)])

        report = outbox.budget_report()
        windows = queued_windows(outbox)

    assert report.bytes <= 40_000 and report.discarded == {} and report.discarded_windows == 0
    assert report.merged_windows > 0
    assert sum(w.points["power"].count for w in windows) == 2 * 300, "no reading lost"
    merged = [w for w in windows if (w.window_end - w.window_start).total_seconds() > 10]
    assert all(w.points["power"].count == 60 for w in merged[:-1]), "30 windows per 300 s"
    assert report.merged_windows == sum(w.points["power"].count for w in merged) // 2
    starts = [w.window_start for w in windows]
    assert starts == sorted(starts), "merged windows keep their place: oldest first"


def test_past_merging_old_heartbeats_then_the_oldest_telemetry_go_and_events_never(
    tmp_path: Path,
) -> None:
    health = State(online=True)  # a stand-in body: the budget goes by kind and size
    with Outbox(tmp_path / "o.sqlite3", budget_bytes=8_000, merge_window_s=100) as outbox:
        for i in range(200):
            _, newest_health, *_ = outbox.append_many(
                [(MessageKind.TELEMETRY, window(i, i)), (MessageKind.HEALTH, health)]
                + ([(MessageKind.EVENT, event(i))] if i % 20 == 0 else [])
            )
        rows = outbox.pending(limit=100_000)
        report = outbox.budget_report()
        windows = queued_windows(outbox)

    kinds = [r.kind for r in rows]
    assert kinds.count(MessageKind.EVENT) == 10, "events are never dropped"
    assert newest_health in [r.seq for r in rows], "the newest heartbeat is never dropped"
    assert report.discarded["health:disk_budget"] == 200 - kinds.count(MessageKind.HEALTH)
    assert kinds.count(MessageKind.HEALTH) < 10, "old heartbeats went first"
    assert report.discarded["telemetry:disk_budget"] > 0
    delivered_sources = sum(w.points["power"].count // 2 for w in windows)
    assert delivered_sources + report.discarded_windows == 200, "every window is accounted for"
    assert max(w.window_end for w in windows) == window(199, 0).window_end, "the newest stays"


def test_rows_handed_to_a_publish_are_never_merged_or_dropped(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3", budget_bytes=6_000, merge_window_s=100) as outbox:
        sent = outbox.append_many([(MessageKind.TELEMETRY, window(i, i)) for i in range(5)])
        outbox.mark_sent(sent)
        for i in range(5, 200):
            outbox.append(MessageKind.TELEMETRY, window(i, i))
        rows = outbox.pending(limit=100_000)

        assert [r.seq for r in rows[:5]] == sent
        assert [r.attempts for r in rows[:5]] == [1] * 5


def test_merge_and_drop_counts_belong_to_the_outbox_and_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    with Outbox(path, budget_bytes=6_000, merge_window_s=100) as outbox:
        for i in range(200):
            outbox.append(MessageKind.TELEMETRY, window(i, i))
        before = outbox.budget_report()
    with Outbox(path, budget_bytes=6_000, merge_window_s=100) as outbox:
        after = outbox.budget_report()

    assert before.merged_windows > 0 and before.discarded_windows > 0
    assert (after.merged_windows, after.discarded_windows, after.discarded, after.bytes) == (
        before.merged_windows,
        before.discarded_windows,
        before.discarded,
        before.bytes,
    )


def test_offline_autonomy_is_the_budget_left_at_the_current_append_rate(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.sqlite3", budget_bytes=1 << 30) as outbox:
        assert outbox.budget_report().offline_autonomy_h is None, "no rate before any append"
        for i in range(20):
            outbox.append(MessageKind.TELEMETRY, window(i, i))
        report = outbox.budget_report()

    assert report.offline_autonomy_h is not None
    # 20 rows in well under a second is a rate of at least 20 rows per second
    assert 0 < report.offline_autonomy_h < (1 << 30) / (20 * report.bytes / 20) / 3600 + 1


def test_a_corrupt_outbox_is_moved_aside_and_a_new_one_starts_with_a_new_epoch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox(path) as outbox:
        old_epoch = outbox.epoch
        outbox.append_many([(MessageKind.TELEMETRY, window(i, i)) for i in range(50)])
    with path.open("r+b") as file:  # garble every page after the header page
        file.seek(4096)
        file.write(b"\xa5" * (path.stat().st_size - 4096))

    with pytest.raises(OutboxCorrupt):
        Outbox(path)
    with caplog.at_level(logging.ERROR), Outbox.open_or_replace(path) as outbox:
        outbox.append(MessageKind.EVENT, event(1))
        assert outbox.epoch != old_epoch
        assert [r.kind for r in outbox.pending()] == [MessageKind.EVENT]

    (aside,) = tmp_path.glob("outbox.sqlite3.corrupt-*[0-9Z]")
    assert f"outbox {path} is corrupt" in caplog.text and str(aside) in caplog.text


def test_a_file_that_is_not_a_database_is_moved_aside_too(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(b"this is not SQLite" * 100)

    with Outbox.open_or_replace(path) as outbox:
        assert outbox.depth() == 0

    assert len(list(tmp_path.glob("outbox.sqlite3.corrupt-*"))) == 1


def test_merged_rows_are_each_small_enough_to_send(tmp_path: Path) -> None:
    # 3000 devices with a window each, queued as batches: nothing to combine, so the merge rewrites
    # them, and its rows must stay within what one message may carry
    batches = [
        TelemetryBatch(windows=[window(0, i, device=f"dev-{i}") for i in range(j, j + 150)])
        for j in range(0, 3000, 150)
    ]
    with Outbox(tmp_path / "o.sqlite3", budget_bytes=10_000_000) as outbox:
        outbox.append_many([(MessageKind.TELEMETRY, batch) for batch in batches])
        outbox.budget_bytes = outbox.budget_report().bytes - 1
        outbox.enforce_budget()
        rows = outbox.pending(limit=10_000)
        dropped = outbox.budget_report().discarded_windows

    assert len(queued_windows_of(rows)) + dropped == 3000
    assert all(len(r.body) <= BATCH_BYTES for r in rows), "each row is one message"
