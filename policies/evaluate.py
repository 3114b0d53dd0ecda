"""evaluate(policy, usage, now) -> Decision: the one place where quotas are decided.

Small declarative counters (as in openwisp-radius) each say what they measure and over which
period; evaluation returns a value and never raises or logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

from policies.messages import N_
from policies.messages import gettext as _
from policies.model import Policy
from policies.units import human_duration, human_size

MONTHS = [N_("enero"), N_("febrero"), N_("marzo"), N_("abril"), N_("mayo"), N_("junio"), N_("julio"),
          N_("agosto"), N_("septiembre"), N_("octubre"), N_("noviembre"), N_("diciembre")]


@dataclass(frozen=True)
class Usage:
    """What one person has used, all devices together, in the current local day and month."""

    day_seconds: int = 0
    day_bytes: int = 0
    month_seconds: int = 0
    month_bytes: int = 0
    open_sessions: int = 0


@dataclass(frozen=True)
class Decision:
    """One reply shape for accept and reject; radius/attributes.py turns it into attributes."""

    accept: bool
    reason: str = "ok"                  # ok | a counter name | closed | devices | credentials
    message: str = ""                   # plain words for the citizen (Spanish in a Reply-Message)
    session_timeout: int | None = None  # seconds
    idle_timeout: int | None = None
    interim_interval: int | None = None
    data_left: int | None = None        # bytes, down+up
    rate_down: int | None = None        # bit/s
    rate_up: int | None = None
    slow_until: datetime | None = None  # in the slow lane until this local time (a spent pool resets)


@dataclass(frozen=True)
class Counter:
    """A quota: which limit, which usage field, and when it resets."""

    name: str
    limit: str
    used: str
    kind: str      # time | data
    period: str    # day | month


COUNTERS = (
    Counter("daily_time", "daily_time", "day_seconds", "time", "day"),
    Counter("daily_data", "daily_data", "day_bytes", "data", "day"),
    Counter("monthly_time", "monthly_time", "month_seconds", "time", "month"),
    Counter("monthly_data", "monthly_data", "month_bytes", "data", "month"),
)


def period_keys(now: datetime) -> tuple[str, str]:
    """The local day and month keys ('20261126', '202611') that counters are filed under."""
    return now.strftime("%Y%m%d"), now.strftime("%Y%m")


def next_reset(period: str, now: datetime) -> datetime:
    """The local midnight at which a day or month counter starts again."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return midnight + timedelta(days=1)
    first = midnight.replace(day=1)
    return (first + timedelta(days=32)).replace(day=1)


def _reset_words(period: str, now: datetime, lang: str) -> str:
    if period == "day":
        return _("Vuelve a partir de las 00:00.", lang)
    reset = next_reset("month", now)
    return _("Vuelve a partir del 1 de %(month)s.", lang) % {"month": _(MONTHS[reset.month - 1], lang)}


def _exhausted(counter: Counter, amount: int, now: datetime, lang: str) -> Decision:
    what = human_duration(amount, lang) if counter.kind == "time" else human_size(amount)
    if counter.kind == "time" and amount == 3600:   # "Usaste tus 1 hora" is not Spanish
        text = _("Usaste tu hora de hoy.", lang) if counter.period == "day" else _("Usaste tu hora de este mes.", lang)
    elif counter.period == "day":
        text = _("Usaste tus %(what)s de hoy.", lang) % {"what": what}
    else:
        text = _("Usaste tus %(what)s de este mes.", lang) % {"what": what}
    return Decision(False, counter.name, f"{text} {_reset_words(counter.period, now, lang)}")


def _slow_words(counter: Counter, amount: int, now: datetime, lang: str) -> str:
    what = human_size(amount)
    if amount == 10**9:   # "tus 1 GB" is not how people speak: "tu giga"
        text = _("Usaste tu giga de hoy", lang) if counter.period == "day" else _("Usaste tu giga de este mes", lang)
    elif counter.period == "day":
        text = _("Usaste tus %(what)s de hoy", lang) % {"what": what}
    else:
        text = _("Usaste tus %(what)s de este mes", lang) % {"what": what}
    if counter.period == "day":
        until = _("sigues conectado a velocidad reducida hasta las 00:00.", lang)
    else:
        month = _(MONTHS[next_reset("month", now).month - 1], lang)
        until = _("sigues conectado a velocidad reducida hasta el 1 de %(month)s.", lang) % {"month": month}
    return f"{text}: {until}"


def _slow_lane(policy: Policy, spent_pools: list[Counter], time_left: list[int], data_left: list[int],
               now: datetime, lang: str) -> Decision:
    """Accept in the slow lane until the last of the spent pools resets; time limits still apply."""
    last = max(spent_pools, key=lambda c: (next_reset(c.period, now), c.period == "month"))
    cap = getattr(policy.limits, last.limit)
    return Decision(
        True, last.name, _slow_words(last, cap, now, lang),
        session_timeout=min(time_left) if time_left else None,
        idle_timeout=policy.limits.idle_timeout,
        interim_interval=policy.interim_interval,
        data_left=min(data_left) if data_left else None,
        rate_down=policy.after_quota.rate_down,
        rate_up=policy.after_quota.rate_up,
        slow_until=next_reset(last.period, now),
    )


def seconds_to_close(policy: Policy, now: datetime) -> int | None:
    """Seconds until closing time if open now, 0 if closed now, None if always open."""
    if policy.open is None or policy.close is None:
        return None
    t = now.time().replace(microsecond=0)
    if policy.open < policy.close:
        is_open = policy.open <= t < policy.close
    else:  # open across midnight, e.g. 18:00-02:00
        is_open = t >= policy.open or t < policy.close
    if not is_open:
        return 0
    close = datetime.combine(now.date(), policy.close, tzinfo=now.tzinfo)
    if close <= now:
        close = datetime.combine(now.date() + timedelta(days=1), policy.close, tzinfo=now.tzinfo)
    # Aware datetimes sharing a tzinfo subtract as wall-clock times: go through UTC so the night
    # daylight saving time ends (or starts) counts its real length.
    return max(1, int((close.astimezone(timezone.utc) - now.astimezone(timezone.utc)).total_seconds()))


def _clock(value: time) -> str:
    return value.strftime("%H:%M")


def evaluate(policy: Policy, usage: Usage, now: datetime, lang: str = "es") -> Decision:
    """Decide whether a person may start a session now and with which caps (messages in `lang`)."""
    limits = policy.limits
    to_close = seconds_to_close(policy, now)
    if to_close == 0:
        text = _("El servicio en este lugar abre de %(open)s a %(close)s. Vuelve a partir de las %(open)s.", lang)
        return Decision(False, "closed", text % {"open": _clock(policy.open), "close": _clock(policy.close)})
    if limits.devices is not None and usage.open_sessions >= limits.devices:
        text = _("Ya tienes %(n)d dispositivos conectados, el máximo. Desconecta uno para entrar con este.", lang)
        return Decision(False, "devices", text % {"n": limits.devices})
    time_left: list[int] = [v for v in (limits.session_time, to_close) if v]
    data_left: list[int] = []
    slow: list[Counter] = []
    for counter in COUNTERS:
        cap = getattr(limits, counter.limit)
        if cap is None:
            continue
        left = cap - getattr(usage, counter.used)
        throttled = policy.after_quota.throttles(counter.name)
        if left <= 0 and throttled:
            slow.append(counter)
        elif left <= 0:
            return _exhausted(counter, cap, now, lang)
        elif not throttled:   # no cap for a throttled pool: the NAS would end the session at it
            (time_left if counter.kind == "time" else data_left).append(left)
    if slow:
        return _slow_lane(policy, slow, time_left, data_left, now, lang)
    return Decision(
        True,
        session_timeout=min(time_left) if time_left else None,
        idle_timeout=limits.idle_timeout,
        interim_interval=policy.interim_interval,
        data_left=min(data_left) if data_left else None,
        rate_down=policy.rate_down,
        rate_up=policy.rate_up,
    )


def spent(policy: Policy, usage: Usage) -> Counter | None:
    """The first day/month counter that `usage` has used up, for mid-session enforcement: one that
    ends the session comes before one that only slows it down (AfterQuota.throttles)."""
    caps = {c: getattr(policy.limits, c.limit) for c in COUNTERS}
    used_up = [c for c, cap in caps.items() if cap is not None and getattr(usage, c.used) >= cap]
    ending = [c for c in used_up if not policy.after_quota.throttles(c.name)]
    return (ending or used_up or [None])[0]

