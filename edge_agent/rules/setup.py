"""From agent settings and profiles to the rule engine's devices, and their cross-checks."""

from __future__ import annotations

from collections.abc import Mapping

from device_profiles.schema import Profile
from edge_agent.rules.calendar import load_calendar
from edge_agent.rules.engine import (
    RuleConfigError,
    RuleDevice,
    compile_rules,
    override_applies,
)
from edge_agent.settings import AgentSettings, DeviceConfig


def source_of(device: DeviceConfig, settings: AgentSettings) -> str:
    """The link a device is reached through: its Modbus TCP endpoint, or the site broker."""
    if device.modbus is not None:
        return f"modbus:{device.modbus.host}:{device.modbus.port}"
    return f"site-broker:{settings.site_broker.host}:{settings.site_broker.port}"


def rule_devices(settings: AgentSettings, profiles: Mapping[str, Profile]) -> list[RuleDevice]:
    return [
        RuleDevice(
            device=d.id, room=d.room, profile=profiles[d.profile], source=source_of(d, settings)
        )
        for d in settings.devices
        if d.profile in profiles
    ]


def check_rules(settings: AgentSettings, profiles: Mapping[str, Profile]) -> list[str]:
    """Rule overrides, local actions and the calendar file, one ``field.path: rule`` line each."""
    errors: list[str] = []
    devices = rule_devices(settings, profiles)
    whens: list[str] = []
    for device in devices:
        try:
            rules = compile_rules(device, settings.rules)
        except RuleConfigError as exc:
            errors.extend(line for line in str(exc).splitlines() if line not in errors)
            continue
        whens += [leaf.when for rule in rules for leaf in [rule, *rule.leaves()] if leaf.when]
    for index, override in enumerate(settings.rules):
        if not any(override_applies(device, override) for device in devices):
            errors.append(
                f"rules[{index}].rule.id: no matching device has a rule {override.rule['id']!r}"
                " (a new rule needs severity and standard)"
            )
    by_id = {d.id: d for d in settings.devices}
    for index, action in enumerate(settings.local_actions):
        for field, ref in (("run", action.run), ("on_clear", action.on_clear)):
            if ref is None:
                continue
            where = f"local_actions[{index}].{field}"
            target = by_id.get(ref.device)
            if target is None or target.profile not in profiles:
                errors.append(f"{where}.device: unknown device {ref.device!r}")
                continue
            known = [a.id for a in profiles[target.profile].actions]
            if ref.action not in known:
                errors.append(
                    f"{where}.action: profile {target.profile!r} has no"
                    f" action {ref.action!r} (known: {', '.join(known) or 'none'})"
                )
    try:
        calendar = load_calendar(settings.calendar_file)
    except ValueError as exc:
        errors.append(str(exc))
    else:
        for name in calendar.missing_windows(whens):
            errors.append(f"calendar_file: no window {name!r} (rules use window:{name})")
    return errors
