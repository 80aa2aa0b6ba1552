"""Hypothesis strategies for valid ``campus_protocol`` bodies, envelopes and JSON values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from campus_protocol import (
    BODY_MODELS,
    AlertChange,
    AlertChanges,
    Command,
    CommandResult,
    ConfigDesired,
    DeviceHealth,
    DeviceStatus,
    DistrictKpis,
    Envelope,
    Event,
    EventState,
    FleetHealth,
    Health,
    KpiFigure,
    KpiSnapshot,
    MessageKind,
    OutboxHealth,
    PointRollup,
    PointStats,
    Reported,
    RollupPeriod,
    Rollups,
    Sample,
    SchoolHealthSummary,
    SchoolRollup,
    SchoolStatusCode,
    Severity,
    SiteIdentity,
    State,
    Telemetry,
    TelemetryBatch,
)
from campus_protocol.envelope import EPOCH_PATTERN
from campus_protocol.messages import Body

INT64_MAX = 2**63 - 1

node_ids = st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")
identifiers = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")
labels = st.text(max_size=200)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=INT64_MAX)

# Whole-minute offsets: the wire format (ISO 8601 via pydantic) carries no offset seconds.
timezones = st.one_of(
    st.just(UTC),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
        lambda minutes: timezone(timedelta(minutes=minutes))
    ),
)
aware_datetimes = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=timezones
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=INT64_MAX),
    finite_floats,
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=10), children, max_size=4),
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=5)


@st.composite
def point_stats(draw: st.DrawFn) -> PointStats:
    """Stats whose min <= mean, last <= max."""
    low, a, b, c, high = sorted(draw(st.lists(finite_floats, min_size=5, max_size=5)))
    mean, last, p95 = draw(st.permutations([a, b, c]))
    return PointStats(
        count=draw(st.integers(min_value=1, max_value=INT64_MAX)),
        min=low,
        max=high,
        mean=mean,
        last=last,
        p95=draw(st.none() | st.just(p95)),
        unit=draw(st.text(max_size=8)),
    )


samples = st.builds(Sample, at=aware_datetimes, value=finite_floats)


@st.composite
def telemetry(draw: st.DrawFn) -> Telemetry:
    """A device window with window_end strictly after window_start."""
    start = draw(aware_datetimes)
    length = draw(st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=1)))
    return Telemetry(
        device=draw(identifiers),
        profile=draw(identifiers),
        room=draw(identifiers),
        window_start=start,
        window_end=(start + length).astimezone(draw(timezones)),
        points=draw(st.dictionaries(identifiers, point_stats(), min_size=1, max_size=8)),
        samples=draw(st.dictionaries(identifiers, st.lists(samples, max_size=3), max_size=2)),
    )


telemetry_batches = st.builds(TelemetryBatch, windows=st.lists(telemetry(), min_size=1, max_size=4))


site_identities = st.builds(
    SiteIdentity,
    city_id=identifiers,
    city_name=labels,
    district_id=identifiers,
    district_name=labels,
    school_id=identifiers,
    school_name=labels,
)

device_healths = st.builds(
    DeviceHealth,
    device=identifiers,
    profile=identifiers,
    room=identifiers,
    room_name=labels,
    protocol=identifiers,
    status=st.sampled_from(DeviceStatus),
    last_ok_at=st.none() | aware_datetimes,
    consecutive_failures=counts,
    last_error=st.text(max_size=500),
)

outbox_healths = st.builds(
    OutboxHealth,
    bytes=counts,
    budget_bytes=st.integers(min_value=1, max_value=2**40),
    offline_autonomy_h=st.none() | st.floats(min_value=0, allow_infinity=False),
    merged_windows=counts,
    discarded_windows=counts,
    discarded=st.dictionaries(identifiers, counts, max_size=4),
    disk=st.sampled_from(["ok", "disk_full", "read_only", "io_error"]),
)


@st.composite
def point_rollups(draw: st.DrawFn) -> PointRollup:
    """Rollups whose min <= mean <= max."""
    low, mean, high = sorted(draw(st.lists(finite_floats, min_size=3, max_size=3)))
    return PointRollup(
        windows=draw(st.integers(min_value=1, max_value=INT64_MAX)),
        count=draw(st.integers(min_value=1, max_value=INT64_MAX)),
        min=low,
        max=high,
        mean=mean,
        unit=draw(st.text(max_size=8)),
    )


school_rollups = st.builds(
    SchoolRollup,
    school_id=identifiers,
    district_id=identifiers,
    period=st.sampled_from(RollupPeriod),
    period_start=aware_datetimes,
    devices=counts,
    points=st.dictionaries(identifiers, point_rollups(), max_size=4),
)

alert_changes = st.builds(
    AlertChange,
    alert_id=counts,
    school_id=st.none() | identifiers,
    district_id=st.none() | identifiers,
    device=identifiers,
    rule=identifiers,
    severity=st.sampled_from(Severity),
    state=identifiers,
    at=aware_datetimes,
    message=labels,
)


@st.composite
def school_health_summaries(draw: st.DrawFn) -> SchoolHealthSummary:
    """Summaries whose online counts are within their totals."""
    gateways, devices = draw(counts), draw(counts)
    return SchoolHealthSummary(
        site=draw(site_identities),
        status=draw(st.sampled_from(SchoolStatusCode)),
        gateways=gateways,
        gateways_online=draw(st.integers(min_value=0, max_value=gateways)),
        devices=devices,
        devices_online=draw(st.integers(min_value=0, max_value=devices)),
        last_seen_at=draw(st.none() | aware_datetimes),
    )


kpi_figures = st.builds(
    KpiFigure,
    kpi=identifiers,
    value=st.none() | finite_floats,
    numerator=st.floats(min_value=0, allow_infinity=False),
    denominator=st.floats(min_value=0, allow_infinity=False),
)
district_kpis = st.builds(
    DistrictKpis,
    district_id=identifiers,
    city_id=identifiers,
    schools=counts,
    figures=st.lists(kpi_figures, max_size=6),
)

BODIES: dict[MessageKind, st.SearchStrategy[Any]] = {
    MessageKind.TELEMETRY: telemetry() | telemetry_batches,
    MessageKind.EVENT: st.builds(
        Event,
        rule=identifiers,
        device=identifiers,
        point=identifiers,
        state=st.sampled_from(EventState),
        severity=st.sampled_from(Severity),
        value=finite_floats,
        threshold=finite_floats,
        standard=labels,
        message=labels,
        at=aware_datetimes,
    ),
    MessageKind.HEALTH: st.builds(
        Health,
        site=site_identities,
        agent_version=labels,
        started_at=aware_datetimes,
        uptime_s=st.floats(min_value=0, allow_infinity=False),
        heartbeat_interval_s=st.floats(min_value=0, exclude_min=True, allow_infinity=False),
        outbox_depth=counts,
        devices=st.lists(device_healths, max_size=3),
        outbox=st.none() | outbox_healths,
    ),
    MessageKind.STATE: st.builds(State, online=st.booleans()),
    MessageKind.CMDRES: st.builds(
        CommandResult,
        id=identifiers,
        ok=st.booleans(),
        detail=labels,
        readback=st.none() | finite_floats,
        attempts=counts,
    ),
    MessageKind.REPORTED: st.builds(
        Reported, revision=counts, applied=st.booleans(), detail=labels
    ),
    MessageKind.CMD: st.builds(
        Command,
        id=identifiers,
        name=identifiers,
        device=st.none() | identifiers,
        args=json_objects,
    ),
    MessageKind.CONFIG: st.builds(ConfigDesired, revision=counts, config=json_objects),
    MessageKind.ROLLUP: st.builds(
        Rollups, rollups=st.lists(school_rollups, min_size=1, max_size=3)
    ),
    MessageKind.ALERTCHANGE: st.builds(
        AlertChanges, changes=st.lists(alert_changes, min_size=1, max_size=3)
    ),
    MessageKind.FLEET: st.builds(
        FleetHealth, at=aware_datetimes, schools=st.lists(school_health_summaries(), max_size=3)
    ),
    MessageKind.KPIS: st.builds(
        KpiSnapshot, at=aware_datetimes, districts=st.lists(district_kpis, min_size=1, max_size=3)
    ),
}
assert BODIES.keys() == BODY_MODELS.keys(), "a MessageKind has no body strategy"


def bodies(kind: MessageKind | None = None) -> st.SearchStrategy[Body]:
    """Valid bodies of ``kind``, or of any kind."""
    if kind is not None:
        return BODIES[kind]
    return st.one_of(*BODIES.values())


@st.composite
def envelopes(draw: st.DrawFn, kind: MessageKind | None = None) -> Envelope:
    """Valid envelopes carrying a body of ``kind`` (any kind when None)."""
    return Envelope.wrap(
        node=draw(node_ids),
        epoch=draw(st.from_regex(EPOCH_PATTERN, fullmatch=True)),
        seq=draw(st.integers(min_value=0, max_value=INT64_MAX)),
        body=draw(bodies(kind)),
        sent_at=draw(aware_datetimes),
    )
