"""What a gateway may claim: the registry decides, not the heartbeat.

A gateway authenticates to the broker as itself (client id = username = node id, ACL on its own
topics), but what it *says* is still input: which school it is in, how many devices it has, what
time it is. These checks reject and count what does not fit, each with a bounded reason:

* ``school_mismatch``: a gateway bound to a school reports another one (until the approval
  workflow exists, the first school a gateway reports is the one it keeps);
* ``school_claimed``: a new gateway reports a school already served by ``gateways_per_school``
  other gateways (a gateway cannot join, and so black out or pollute, another school);
* ``district_mismatch``: a heartbeat puts a known school in another district;
* ``device_limit``: registering the device would give the gateway more than
  ``max_devices_per_gateway`` devices;
* ``from_the_future``: a time more than ``max_future_s`` ahead of the hub's clock (a window dated
  2099 would freeze a device's latest value forever).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from campus_protocol.messages import SiteIdentity
from cloud_hub.db.models import Device, Gateway, School
from cloud_hub.ingest.rejections import Rejected


@dataclass(frozen=True, kw_only=True)
class IngestLimits:
    """Bounds on what one gateway may claim; the defaults suit a school gateway."""

    max_future_s: float = 300.0
    max_devices_per_gateway: int = 1024
    gateways_per_school: int = 1


def check_not_future(at: datetime, now: datetime, limits: IngestLimits, *, what: str) -> None:
    """Refuse a time further ahead of ``now`` than the tolerance."""
    if at > now + timedelta(seconds=limits.max_future_s):
        ahead = (at - now).total_seconds()
        raise Rejected(
            "from_the_future",
            f"{what} {at.isoformat()} is {ahead:.0f} s ahead of the hub's clock "
            f"(tolerance {limits.max_future_s:.0f} s)",
        )


def check_site(session: Session, *, node: str, site: SiteIdentity, limits: IngestLimits) -> None:
    """Refuse a heartbeat that moves ``node`` to another school, joins a school that has its
    gateways already, or moves a known school to another district."""
    bound = session.scalar(select(Gateway.school_id).where(Gateway.id == node))
    if bound is not None and bound != site.school_id:
        raise Rejected(
            "school_mismatch",
            f"gateway {node!r} belongs to school {bound!r}, its heartbeat says {site.school_id!r}",
        )
    district = session.scalar(select(School.district_id).where(School.id == site.school_id))
    if district is not None and district != site.district_id:
        raise Rejected(
            "district_mismatch",
            f"school {site.school_id!r} is in district {district!r}, "
            f"gateway {node!r} says {site.district_id!r}",
        )
    if bound is None:
        others = session.scalar(
            select(func.count())
            .select_from(Gateway)
            .where(Gateway.school_id == site.school_id, Gateway.id != node)
        )
        if (others or 0) >= limits.gateways_per_school:
            raise Rejected(
                "school_claimed",
                f"school {site.school_id!r} already has {others} gateway(s); "
                f"gateway {node!r} may not join it",
            )


def check_device_budget(
    session: Session, *, node: str, new_devices: int, limits: IngestLimits
) -> None:
    """Refuse registering ``new_devices`` more devices when that passes the per-gateway limit."""
    if new_devices <= 0:
        return
    known = session.scalar(
        select(func.count()).select_from(Device).where(Device.gateway_id == node)
    )
    if (known or 0) + new_devices > limits.max_devices_per_gateway:
        raise Rejected(
            "device_limit",
            f"gateway {node!r} has {known} devices; {new_devices} more would pass the limit of "
            f"{limits.max_devices_per_gateway}",
        )
