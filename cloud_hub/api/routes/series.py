"""GET /api/v1/devices/{device_id}/series: one point's history, downsampled by the hub."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from cloud_hub.api.deps import CurrentUser, NowDep, QueryTime, SessionDep, not_found
from cloud_hub.api.schemas import DeviceKeyPath, IdQuery, SeriesBucket, SeriesPublic
from cloud_hub.db import devices, series

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])

MAX_RANGE = timedelta(days=366)
PointQuery = Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


@router.get("/{device_id}/series", response_model=SeriesPublic)
def device_series(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    now: NowDep,
    device_id: DeviceKeyPath,
    point: PointQuery,
    since: Annotated[
        QueryTime | None, Query(alias="from", description="default: to - 24 h")
    ] = None,
    until: Annotated[QueryTime | None, Query(alias="to", description="default: now")] = None,
    buckets: Annotated[int, Query(ge=1, le=5000, description="at most this many points")] = 300,
    gateway_id: IdQuery = None,
) -> SeriesPublic:
    """The stored windows of ``point`` starting in ``[from, to)``, folded into at most
    ``buckets`` equal time buckets (min, max, count-weighted mean per bucket). ``device_id`` is
    the device's id on its gateway; when two gateways in your scope have a device of that id,
    name the gateway with ``gateway_id`` (409 otherwise)."""
    until = until or now
    try:
        since = since or until - timedelta(hours=24)
    except OverflowError:
        raise HTTPException(422, "to is too early for a 24 h default range: give from") from None
    if not since < until or until - since > MAX_RANGE:
        raise HTTPException(422, "from must be before to, at most 366 days apart")
    found = devices.find_in_scope(session, key=device_id, gateway_id=gateway_id, scope=user.scope)
    if not found:
        raise not_found(request, user=user, now=now, what=f"device {device_id!r}")
    if len(found) > 1:
        gateways = ", ".join(sorted(d.gateway_id for d in found))
        raise HTTPException(
            409, f"device {device_id!r} is on several gateways ({gateways}): add gateway_id"
        )
    device = found[0]
    rows, width_s = series.downsample(
        session, device_id=device.id, point=point, since=since, until=until, buckets=buckets
    )
    return SeriesPublic(
        device=device.key,
        gateway_id=device.gateway_id,
        point=point,
        unit=series.unit_of(session, device_id=device.id, point=point),
        since=since,
        until=until,
        bucket_s=width_s,
        data=[
            SeriesBucket(t=b.start, min=b.min, max=b.max, mean=b.mean, count=b.count) for b in rows
        ],
    )
