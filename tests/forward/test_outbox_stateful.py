"""The outbox against an in-memory model: append, ack, mark sent, crash, reopen, merge and evict in
any order.

The model keeps what must hold whatever the order: seqs only grow; events and states stay until
acked, exactly as written; ``pending`` gives events first; a row handed to a publish is never
merged or dropped; and every telemetry window ever appended is, exactly once, still queued (alone
or inside a merged window), acked, or counted as dropped. Every test window holds two readings, so
a queued window's ``count / 2`` is the number of windows it stands for.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from campus_forward.outbox import Outbox, OutboxRow
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

WINDOW_S = 10
MERGE_WINDOW_S = 50  # five windows per merged window
BUDGET = 1 << 30


def window(index: int) -> Telemetry:
    return Telemetry(
        device="meter-1",
        profile="eastron_sdm120",
        room="lab-3",
        window_start=datetime.fromtimestamp(index * WINDOW_S, UTC),
        window_end=datetime.fromtimestamp((index + 1) * WINDOW_S, UTC),
        points={"power": PointStats(count=2, min=index, max=index + 1, mean=index, last=index)},
    )


def event(value: int) -> Event:
    return Event(
        rule="gas-high",
        device="lab-3-gas",
        point="co",
        state=EventState.RAISED,
        severity=Severity.I,
        value=value,
        threshold=0,
        standard="GBZ 2.1-2019",
        at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def windows_of(row: OutboxRow) -> list[Telemetry]:
    body = parse_body_json(row.kind, row.body)
    return list(body.windows) if isinstance(body, TelemetryBatch) else [body]  # type: ignore[list-item]


class OutboxMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="outbox-sm-"))
        self.outbox = self.open()
        self.kept: dict[
            int, tuple[MessageKind, int]
        ] = {}  # events and states: seq -> (kind, value)
        self.telemetry: set[int] = set()  # seqs of queued telemetry rows
        self.sent: set[int] = set()  # telemetry seqs handed to a publish, not acked
        self.acquired = 0  # windows appended
        self.acked_windows = 0
        self.last_seq = -1

    def open(self) -> Outbox:
        return Outbox(
            self.dir / "outbox.sqlite3", budget_bytes=BUDGET, merge_window_s=MERGE_WINDOW_S
        )

    def handed_out(self, seqs: list[int]) -> None:
        assert seqs == list(range(self.last_seq + 1, self.last_seq + 1 + len(seqs))), (
            "seqs are consecutive and never reused"
        )
        if seqs:
            self.last_seq = seqs[-1]

    @rule(value=st.integers(0, 1000), kind=st.sampled_from([MessageKind.EVENT, MessageKind.STATE]))
    def append_kept(self, value: int, kind: MessageKind) -> None:
        body = event(value) if kind is MessageKind.EVENT else State(online=value % 2 == 0)
        seq = self.outbox.append(kind, body)
        self.handed_out([seq])
        self.kept[seq] = (kind, value if kind is MessageKind.EVENT else value % 2)

    @rule(count=st.integers(1, 12))
    def append_windows(self, count: int) -> None:
        first = self.acquired
        seqs = self.outbox.append_many(
            [(MessageKind.TELEMETRY, window(i)) for i in range(first, first + count)]
        )
        self.handed_out(seqs)
        self.acquired += count
        self.telemetry.update(seqs)

    @rule()
    def next_seq(self) -> None:
        self.handed_out([self.outbox.next_seq()])

    @precondition(lambda self: bool(self.kept or self.telemetry))
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        rows = self.outbox.pending(limit=10_000)
        chosen = data.draw(st.lists(st.sampled_from(rows), max_size=8, unique_by=lambda r: r.seq))
        for row in chosen:
            if row.kind is MessageKind.TELEMETRY:
                self.acked_windows += sum(w.points["power"].count // 2 for w in windows_of(row))
                self.telemetry.discard(row.seq)
                self.sent.discard(row.seq)
            else:
                del self.kept[row.seq]
        self.outbox.ack_many([r.seq for r in chosen] + [10**9])  # an unknown seq is harmless

    @precondition(lambda self: bool(self.telemetry))
    @rule(data=st.data())
    def mark_sent(self, data: st.DataObject) -> None:
        seqs = data.draw(st.lists(st.sampled_from(sorted(self.telemetry)), max_size=4))
        self.outbox.mark_sent(seqs)
        self.sent.update(seqs)

    @rule(share=st.sampled_from([0.1, 0.5, 0.9]))
    def squeeze_the_budget(self, share: float) -> None:
        """Merge and evict: the budget drops under what is queued, then comes back."""
        self.outbox.budget_bytes = max(1, int(self.outbox.budget_report().bytes * share))
        self.outbox.enforce_budget()
        self.outbox.budget_bytes = BUDGET
        assert self.outbox.last_seq() >= self.last_seq, "merged rows take new seqs"
        self.last_seq = self.outbox.last_seq()
        queued = {r.seq for r in self.outbox.pending(limit=10_000)}
        self.telemetry = {s for s in queued if s not in self.kept}

    @rule()
    def reopen(self) -> None:
        self.outbox.close()
        self.outbox = self.open()

    @rule()
    def crash(self) -> None:
        """The process dies: the connection is dropped without closing it."""
        self.outbox = self.open()

    @invariant()
    def events_and_states_stay_exactly_until_acked_events_first(self) -> None:
        rows = self.outbox.pending(limit=10_000)
        kept = [r for r in rows if r.kind is not MessageKind.TELEMETRY]
        assert sorted(r.seq for r in kept) == sorted(self.kept)
        for row in kept:
            kind, value = self.kept[row.seq]
            body = parse_body_json(row.kind, row.body)
            assert row.kind is kind
            assert value == (body.value if isinstance(body, Event) else int(not body.online))  # type: ignore[attr-defined]
        lanes = [r.lane for r in rows]
        assert lanes == sorted(lanes), "events, then states, then telemetry"

    @invariant()
    def every_window_is_queued_acked_or_counted_as_dropped_exactly_once(self) -> None:
        rows = [r for r in self.outbox.pending(limit=10_000) if r.kind is MessageKind.TELEMETRY]
        queued = sum(w.points["power"].count // 2 for r in rows for w in windows_of(r))
        report = self.outbox.budget_report()
        assert queued + self.acked_windows + report.discarded_windows == self.acquired
        assert self.sent <= {r.seq for r in rows}, "rows handed to a publish are never touched"
        assert set(report.discarded) <= {"telemetry:disk_budget"}

    @invariant()
    def depth_and_last_seq_match(self) -> None:
        assert self.outbox.depth() == len(self.kept) + len(self.telemetry)
        assert self.outbox.last_seq() == self.last_seq

    def teardown(self) -> None:
        self.outbox.close()
        shutil.rmtree(self.dir, ignore_errors=True)


OutboxMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=30, deadline=None)
test_outbox_matches_model = OutboxMachine.TestCase
