"""Parse the human units used in policy files: sizes, durations, rates and clock times."""

from __future__ import annotations

import re
from datetime import time

from policies.messages import gettext, ngettext

_SIZE = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
         "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9}
_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


class UnitError(ValueError):
    """A value that does not parse in the expected unit."""


def _split(text: object, what: str) -> tuple[float, str]:
    if not isinstance(text, str):
        raise UnitError(f"expected a {what} as text, e.g. {_EXAMPLES[what]}")
    m = _NUMBER_UNIT.match(text)
    if not m:
        raise UnitError(f"{text!r} is not a {what}, e.g. {_EXAMPLES[what]}")
    return float(m.group(1)), m.group(2)


_EXAMPLES = {"size": '"1GB" or "500MiB"', "duration": '"2h" or "90m"', "rate": '"5Mbit"'}


def parse_size(text: object) -> int:
    """Return bytes for "1GB", "500MiB" (KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024)."""
    value, unit = _split(text, "size")
    factor = _SIZE.get(unit.upper() if unit else "B")
    if factor is None or (unit.lower().endswith("ib") and unit[-2:] != "iB"):
        raise UnitError(f"unknown size unit {unit!r} in {text!r}: use KB MB GB or KiB MiB GiB")
    return int(value * factor)


def parse_duration(text: object) -> int:
    """Return seconds for "90s", "10m", "2h", "1d"."""
    value, unit = _split(text, "duration")
    factor = _DURATION.get(unit)
    if factor is None:
        raise UnitError(f"unknown duration unit {unit!r} in {text!r}: use s m h d")
    return int(value * factor)


def parse_rate(text: object) -> int:
    """Return bits per second for "512kbit", "5Mbit"."""
    value, unit = _split(text, "rate")
    factor = _RATE.get(unit.lower())
    if factor is None:
        raise UnitError(f"unknown rate unit {unit!r} in {text!r}: use kbit Mbit")
    return int(value * factor)


def parse_clock(text: object) -> time:
    """Return a time for "06:00" (24-hour clock)."""
    if not isinstance(text, str) or not re.fullmatch(r"\d{2}:\d{2}", text.strip()):
        raise UnitError(f"{text!r} is not a time of day, e.g. \"06:00\"")
    hour, minute = (int(p) for p in text.strip().split(":"))
    if hour > 24 or minute > 59 or (hour == 24 and minute):
        raise UnitError(f"{text!r} is not a time of day")
    return time(0, 0) if hour == 24 else time(hour, minute)


def human_duration(seconds: int, language: str = "es") -> str:
    """Words for a duration: "2 horas", "45 minutos", "1 hora y 30 minutos" (English: "1 hour and 30 minutes")."""
    hours, rest = divmod(int(seconds), 3600)
    minutes = rest // 60
    h = ngettext("%(n)d hora", "%(n)d horas", hours, language) % {"n": hours}
    m = ngettext("%(n)d minuto", "%(n)d minutos", minutes, language) % {"n": minutes}
    if hours and minutes:
        return gettext("%(hours)s y %(minutes)s", language) % {"hours": h, "minutes": m}
    return h if hours else m


def human_size(nbytes: int) -> str:
    """Short human size in powers of 1000: "1 GB", "500 MB"."""
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if nbytes >= factor:
            value = nbytes / factor
            return f"{value:.0f} {unit}" if value == int(value) or value >= 10 else f"{value:.1f} {unit}"
    return f"{nbytes} B"
