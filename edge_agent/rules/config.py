"""Site configuration of rules and local actions (agent.yaml ``rules:`` and ``local_actions:``).

``rules:`` changes a profile's edge rules for some devices (matched by device, room and/or
profile) or adds site rules::

    rules:
      - match: {room: chem-lab-1}
        rule: {id: gas_level_1, threshold: 20}          # change fields of a profile rule
      - match: {device: lab-di}
        rule: {id: chem_store_door_opened, enabled: false}
      - match: {device: cold-room-1}
        rule: {id: door_temp_rising, kind: rate, point: temperature, op: ">", threshold: 0.5,
               over_s: 300, severity: IV, where: edge, standard: "none: site rule"}

``local_actions:`` run a profile's named action on a device when a rule raises (and optionally
another when it clears)::

    local_actions:
      - id: lab_ventilation
        when: {rule: gas_level_1, room: chem-lab-1}
        run: {device: lab-relay, action: relay_1_on}
        on_clear: {device: lab-relay, action: relay_1_off}
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from campus_config import Section

DeviceRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
ActionId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class DeviceMatch(Section):
    """Selects devices; every field given must match."""

    device: DeviceRef | None = None
    room: DeviceRef | None = None
    profile: str | None = None

    def matches(self, *, device: str, room: str, profile: str) -> bool:
        return (
            (self.device is None or self.device == device)
            and (self.room is None or self.room == room)
            and (self.profile is None or self.profile == profile)
        )


class RuleOverride(Section):
    match: DeviceMatch = DeviceMatch()
    rule: dict[str, Any]  # "id" plus the fields to change; "enabled: false" removes the rule

    @model_validator(mode="after")
    def _has_id(self) -> RuleOverride:
        if not isinstance(self.rule.get("id"), str):
            raise ValueError("rule.id: required (the profile rule to change or the rule to add)")
        if "where" in self.rule and self.rule["where"] != "edge":
            raise ValueError("rule.where: site rules run at the edge (the hub reads profiles)")
        return self


class ActionRef(Section):
    device: DeviceRef
    action: ActionId


class ActionTrigger(Section):
    rule: str
    device: DeviceRef | None = None
    room: DeviceRef | None = None


class LocalAction(Section):
    """Run ``run`` when ``when.rule`` raises on a matching device; ``on_clear`` when it clears."""

    id: ActionId
    when: ActionTrigger
    run: ActionRef
    on_clear: ActionRef | None = None
    retries: int = Field(default=2, ge=0, le=5)
