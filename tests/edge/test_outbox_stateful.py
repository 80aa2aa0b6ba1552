"""The outbox against an in-memory model: append / ack / next_seq / reopen in any order."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from campus_protocol.messages import MessageKind, State
from edge_agent.outbox import Outbox


class OutboxMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="outbox-sm-"))
        self.outbox = Outbox(self.dir / "outbox.sqlite3")
        self.model: dict[int, bool] = {}  # seq -> body.online, for rows not yet acked
        self.handed_out: list[int] = []

    @rule(online=st.booleans())
    def append(self, online: bool) -> None:
        seq = self.outbox.append(MessageKind.STATE, State(online=online))
        assert not self.handed_out or seq > self.handed_out[-1], "seq must strictly increase"
        self.handed_out.append(seq)
        self.model[seq] = online

    @rule()
    def next_seq(self) -> None:
        seq = self.outbox.next_seq()
        assert seq > self.handed_out[-1] if self.handed_out else seq == 0
        self.handed_out.append(seq)

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        seq = data.draw(st.sampled_from(sorted(self.model)))
        self.outbox.ack(seq)
        del self.model[seq]

    @rule(seq=st.integers(min_value=0, max_value=50))
    def ack_unknown_or_done(self, seq: int) -> None:
        if seq not in self.model:
            self.outbox.ack(seq)  # harmless

    @rule()
    def reopen(self) -> None:
        self.outbox.close()
        self.outbox = Outbox(self.dir / "outbox.sqlite3")

    @invariant()
    def pending_matches_model_in_seq_order(self) -> None:
        rows = self.outbox.pending(limit=1000)
        assert [r.seq for r in rows] == sorted(self.model)
        assert [State.model_validate_json(r.body).online for r in rows] == [
            self.model[s] for s in sorted(self.model)
        ]
        assert self.outbox.depth() == len(self.model)

    def teardown(self) -> None:
        self.outbox.close()
        shutil.rmtree(self.dir, ignore_errors=True)


OutboxMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)
test_outbox_matches_model = OutboxMachine.TestCase
