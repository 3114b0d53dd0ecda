"""The policy data type and its loader: one TOML file per policy, strictly validated."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any

from policies.units import UnitError, parse_clock, parse_duration, parse_rate, parse_size

POLICY_DIR = Path(__file__).resolve().parent


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class Limits:
    """Per-person quotas; None means unlimited."""

    daily_time: int | None = None
    daily_data: int | None = None
    monthly_time: int | None = None
    monthly_data: int | None = None
    session_time: int | None = None
    idle_timeout: int | None = None
    devices: int | None = None


DATA_POOLS = ("daily_data", "monthly_data")


@dataclass(frozen=True)
class AfterQuota:
    """What happens when a data pool is spent: "disconnect" (the default) or "throttle" to a slow lane."""

    action: str = "disconnect"
    rate_down: int | None = None   # bit/s in the slow lane
    rate_up: int | None = None
    applies_to: tuple[str, ...] = ()

    def throttles(self, counter: str) -> bool:
        """True when a spent `counter` puts the person in the slow lane instead of ending the session."""
        return self.action == "throttle" and counter in self.applies_to


@dataclass(frozen=True)
class Policy:
    """A named set of limits, rates and opening hours."""

    name: str
    title: str
    limits: Limits = field(default_factory=Limits)
    rate_down: int | None = None   # bit/s, per session
    rate_up: int | None = None
    open: time | None = None
    close: time | None = None
    interim_interval: int = 300
    source: str = ""
    after_quota: AfterQuota = field(default_factory=AfterQuota)


def _positive(parse: Callable[[object], int]) -> Callable[[object], int]:
    def check(value: object) -> int:
        number = value if isinstance(value, int) and not isinstance(value, bool) else parse(value)
        if number <= 0:
            raise UnitError("must be greater than zero")
        return number
    return check


def _action(value: object) -> str:
    if value not in ("throttle", "disconnect"):
        raise UnitError('must be "throttle" or "disconnect"')
    return str(value)


def _pools(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise UnitError('must be a list of limits, e.g. ["daily_data", "monthly_data"]')
    for name in value:
        if name in ("daily_time", "monthly_time", "session_time"):
            raise UnitError(f"{name!r} cannot be throttled: time limits always end the session")
        if name not in DATA_POOLS:
            raise UnitError(f"{name!r} is not a data limit (use {', '.join(DATA_POOLS)})")
    if len(set(value)) != len(value):
        raise UnitError("a limit is repeated")
    return tuple(value)


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
        raise UnitError("must be a whole number from 1 to 100")
    return value


# section -> key -> parser; the one place that says what a policy file may contain.
_SCHEMA: dict[str, dict[str, Callable[[object], Any]]] = {
    "limits": {
        "daily_time": _positive(parse_duration), "daily_data": _positive(parse_size),
        "monthly_time": _positive(parse_duration), "monthly_data": _positive(parse_size),
        "session_time": _positive(parse_duration), "idle_timeout": _positive(parse_duration),
        "devices": _count,
    },
    "bandwidth": {"down": _positive(parse_rate), "up": _positive(parse_rate)},
    "hours": {"open": parse_clock, "close": parse_clock},
    "accounting": {"interim_interval": _positive(parse_duration)},
    "after_quota": {"action": _action, "down": _positive(parse_rate), "up": _positive(parse_rate),
                    "applies_to": _pools},
}
_TOP = {"name", "title", "description", *_SCHEMA}


def _section(data: dict, section: str, where: str) -> dict[str, Any]:
    raw = data.get(section, {})
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: [{section}] must be a table")
    parsed = {}
    for key, value in raw.items():
        parser = _SCHEMA[section].get(key)
        if parser is None:
            known = ", ".join(sorted(_SCHEMA[section]))
            raise PolicyError(f"{where}: unknown key {section}.{key} (known: {known})")
        try:
            parsed[key] = parser(value)
        except UnitError as exc:
            raise PolicyError(f"{where}: {section}.{key}: {exc}") from None
    return parsed


def policy_from_dict(data: dict, where: str) -> Policy:
    """Build and validate a Policy from parsed TOML; errors name `where` and the key."""
    unknown = set(data) - _TOP
    if unknown:
        raise PolicyError(f"{where}: unknown key {sorted(unknown)[0]} (known: {', '.join(sorted(_TOP))})")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 64:
        raise PolicyError(f"{where}: name is required (text, at most 64 characters)")
    limits = Limits(**_section(data, "limits", where))
    rates = _section(data, "bandwidth", where)
    hours = _section(data, "hours", where)
    if ("open" in hours) != ("close" in hours):
        raise PolicyError(f"{where}: hours needs both open and close")
    if hours and hours["open"] == hours["close"]:
        raise PolicyError(f"{where}: hours.close equals hours.open; leave [hours] out for always open")
    interim = _section(data, "accounting", where).get("interim_interval", 300)
    if interim < 60:
        raise PolicyError(f"{where}: accounting.interim_interval must be at least 60s")
    if limits.session_time and limits.daily_time and limits.session_time > limits.daily_time:
        raise PolicyError(f"{where}: limits.session_time is longer than limits.daily_time")
    if limits.daily_time and limits.monthly_time and limits.daily_time > limits.monthly_time:
        raise PolicyError(f"{where}: limits.daily_time is longer than limits.monthly_time")
    if limits.daily_data and limits.monthly_data and limits.daily_data > limits.monthly_data:
        raise PolicyError(f"{where}: limits.daily_data is more than limits.monthly_data")
    if limits.daily_time and limits.daily_time > 86400:
        raise PolicyError(f"{where}: limits.daily_time is longer than a day")
    title = data.get("title", name)
    if not isinstance(title, str):
        raise PolicyError(f"{where}: title must be text")
    return Policy(name=name.strip(), title=title, limits=limits, rate_down=rates.get("down"),
                  rate_up=rates.get("up"), open=hours.get("open"), close=hours.get("close"),
                  interim_interval=interim, source=where,
                  after_quota=_after_quota(_section(data, "after_quota", where), limits, rates, where))


def _kbit(rate: int) -> str:
    return f"{rate // 1000}kbit"


def _after_quota(section: dict[str, Any], limits: Limits, rates: dict[str, int], where: str) -> AfterQuota:
    """The [after_quota] section checked against the policy's own limits and normal rates."""
    action = section.get("action", "disconnect")
    if action == "disconnect":
        extra = sorted(set(section) - {"action"})
        if extra:
            raise PolicyError(f'{where}: after_quota.{extra[0]} only applies with after_quota.action = "throttle"')
        return AfterQuota()
    for key in ("down", "up"):
        if key not in section:
            raise PolicyError(f'{where}: after_quota.{key} is required with action = "throttle" (e.g. "256kbit")')
        normal = rates.get(key)
        if normal is None:   # the slow lane is measured against it, and the NAS is given it back at the reset
            raise PolicyError(f'{where}: after_quota.action = "throttle" needs bandwidth.{key} (the normal rate)')
        if section[key] >= normal:
            raise PolicyError(f"{where}: after_quota.{key} ({_kbit(section[key])}) is not slower than "
                              f"bandwidth.{key} ({_kbit(normal)})")
    pools = section.get("applies_to") or tuple(p for p in DATA_POOLS if getattr(limits, p) is not None)
    if not pools:
        raise PolicyError(f"{where}: after_quota: the policy sets no data limit (limits.daily_data or "
                          f"limits.monthly_data) to throttle after")
    for pool in pools:
        if getattr(limits, pool) is None:
            raise PolicyError(f"{where}: after_quota.applies_to names {pool} but limits.{pool} is not set")
    return AfterQuota("throttle", section["down"], section["up"], tuple(pools))


def load_policies(directory: Path | str = POLICY_DIR) -> dict[str, Policy]:
    """Load every *.toml in `directory`; raise PolicyError naming the file and key on any fault."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PolicyError(f"{directory}: policy directory not found")
    policies: dict[str, Policy] = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{path.name}: not valid TOML: {exc}") from None
        policy = policy_from_dict(data, path.name)
        if policy.name in policies:
            raise PolicyError(f"{path.name}: name {policy.name!r} is already used by {policies[policy.name].source}")
        policies[policy.name] = policy
    if not policies:
        raise PolicyError(f"{directory}: no *.toml policy files")
    return policies
