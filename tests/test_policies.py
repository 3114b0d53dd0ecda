"""Policy files (loader, units, validation) and evaluate(): the figures and words a citizen gets."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from policies import POLICY_DIR, PolicyError, Usage, evaluate, load_policies, period_keys
from policies.evaluate import COUNTERS, next_reset, spent
from policies.model import AfterQuota, policy_from_dict
from policies.units import parse_duration, parse_rate, parse_size

pytestmark = pytest.mark.engine_neutral   # policy files and their evaluation

MX = ZoneInfo("America/Mexico_City")
GB, MB = 10**9, 10**6
HOUR = 3600


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=MX)


def write(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(body, encoding="utf-8")
    return path


def load_error(tmp_path: Path, body: str, filename: str = "plaza.toml") -> str:
    write(tmp_path, filename, body)
    with pytest.raises(PolicyError) as info:
        load_policies(tmp_path)
    return str(info.value)


@pytest.fixture(scope="module")
def shipped():
    return load_policies()


@pytest.fixture(scope="module")
def cut_off(shipped):
    """The park policy as it was before the slow lane: a spent data pool ends the session."""
    return replace(shipped["parque"], after_quota=AfterQuota())


# --- the shipped files ------------------------------------------------------------------------------------


def test_every_shipped_policy_loads_with_its_figures(shipped):
    assert set(shipped) == {"parque", "centro-digital", "ejido", "personal", "demo"}
    assert {p.stem for p in POLICY_DIR.glob("*.toml")} == set(shipped)

    parque = shipped["parque"]
    assert parque.title == "Parques y plazas"
    limits = parque.limits
    assert (limits.daily_time, limits.daily_data, limits.monthly_time, limits.monthly_data) == \
        (2 * HOUR, 1 * GB, 40 * HOUR, 20 * GB)
    assert (limits.session_time, limits.idle_timeout, limits.devices) == (HOUR, 600, 2)
    assert (parque.rate_down, parque.rate_up) == (5_000_000, 1_000_000)
    assert (parque.open, parque.close, parque.interim_interval) == (time(6), time(23), 300)
    assert parque.after_quota == AfterQuota("throttle", 256_000, 128_000, ("daily_data", "monthly_data"))

    centro = shipped["centro-digital"]
    assert (centro.limits.daily_time, centro.limits.daily_data, centro.limits.session_time) == \
        (6 * HOUR, 5 * GB, 4 * HOUR)
    assert (centro.open, centro.close, centro.rate_down, centro.rate_up) == (time(8), time(20), 20 * MB, 5 * MB)

    ejido = shipped["ejido"]
    assert (ejido.limits.monthly_data, ejido.limits.daily_data, ejido.limits.devices) == (30 * GB, None, 5)
    assert (ejido.open, ejido.close) == (None, None)

    personal = shipped["personal"]
    assert (personal.limits.daily_time, personal.limits.monthly_data, personal.limits.session_time) == \
        (None, None, 24 * HOUR)
    assert (personal.rate_down, personal.rate_up) == (50 * MB, 10 * MB)
    assert {p.after_quota.action for name, p in shipped.items() if name not in ("parque", "demo")} == {"disconnect"}
    # make run's demo site: the park at any hour, so a tester at night can connect
    demo = shipped["demo"]
    assert (demo.open, demo.close) == (None, None)
    assert (demo.limits, demo.rate_down, demo.rate_up, demo.after_quota) == \
        (parque.limits, parque.rate_down, parque.rate_up, parque.after_quota)


# --- units ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("1KB", 1000), ("1MB", 10**6), ("1GB", 10**9), ("20GB", 20 * 10**9), ("1.5GB", 1_500_000_000),
    ("1KiB", 1024), ("1MiB", 2**20), ("1GiB", 2**30), ("500MiB", 500 * 2**20), ("1 GB", 10**9),
])
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1.5h", 5400), ("40h", 144000),
])
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("512kbit", 512_000), ("5Mbit", 5_000_000), ("1.5Mbit", 1_500_000)])
def test_rates(text, expected):
    assert parse_rate(text) == expected


def test_units_in_a_policy_file(tmp_path):
    write(tmp_path, "u.toml", 'name = "u"\n[limits]\ndaily_data = "1GiB"\nmonthly_data = "3GB"\n'
                              'daily_time = "90m"\n[bandwidth]\ndown = "512kbit"\nup = "2Mbit"\n')
    policy = load_policies(tmp_path)["u"]
    assert (policy.limits.daily_data, policy.limits.monthly_data, policy.limits.daily_time) == (2**30, 3 * GB, 5400)
    assert (policy.rate_down, policy.rate_up) == (512_000, 2_000_000)
    assert policy.title == "u" and policy.source == "u.toml"


# --- errors name the file and the key ---------------------------------------------------------------------


THROTTLE = ('[limits]\ndaily_data = "1GB"\n[bandwidth]\ndown = "5Mbit"\nup = "1Mbit"\n'
            '[after_quota]\naction = "throttle"\n')


@pytest.mark.parametrize(("body", "key"), [
    ('[limits]\ndaily_time = "2 horas"', "limits.daily_time"),          # bad unit
    ('[limits]\ndaily_time = "2H"', "limits.daily_time"),
    ('[limits]\ndaily_time = "1GB"', "limits.daily_time"),             # a size where a duration goes
    ('[limits]\ndaily_data = "1 gigabyte"', "limits.daily_data"),
    ('[limits]\ndaily_data = "5Mbit"', "limits.daily_data"),           # a rate where a size goes
    ('[bandwidth]\ndown = "5Mbps"', "bandwidth.down"),
    ('[bandwidth]\nup = "1MB"', "bandwidth.up"),
    ('[limits]\ndaily_time = "-2h"', "limits.daily_time"),             # negative
    ('[limits]\ndevices = -1', "limits.devices"),
    ('[limits]\ndaily_data = "0GB"', "limits.daily_data"),             # zero
    ('[limits]\ndevices = 0', "limits.devices"),
    ('[bandwidth]\ndown = "0Mbit"', "bandwidth.down"),
    ('[limits]\ndaily_time = "2h"\nsession_time = "3h"', "limits.session_time"),   # session > day
    ('[limits]\ndaily_time = "25h"', "limits.daily_time"),            # more than a day in a day
    ('[limits]\ndaily_data = "2GB"\nmonthly_data = "1GB"', "limits.daily_data"),
    ('[hours]\nopen = "08:00"\nclose = "08:00"', "hours"),            # open == close
    ('[hours]\nopen = "08:00"', "hours"),                             # close missing
    ('[hours]\nopen = "25:00"\nclose = "08:00"', "hours.open"),
    ('[hours]\nopen = "8am"\nclose = "20:00"', "hours.open"),
    ('[accounting]\ninterim_interval = "10s"', "accounting.interim_interval"),
    ('[limits]\ndaily_minutes = 90', "limits.daily_minutes"),         # unknown key in a section
    ('nombre = "plaza"', "nombre"),                                   # unknown key at the top
    ('limits = "2h"', "[limits]"),
    ('[after_quota]\nspeed = "1Mbit"', "after_quota.speed"),                        # unknown key
    ('[after_quota]\naction = "slow"', "after_quota.action"),
    (f'{THROTTLE}down = "256kbps"\nup = "128kbit"', "after_quota.down"),            # bad rate
    (f'{THROTTLE}down = "0kbit"\nup = "128kbit"', "after_quota.down"),
    (f'{THROTTLE}down = "10Mbit"\nup = "128kbit"', "after_quota.down"),             # faster than normal
    (f'{THROTTLE}down = "256kbit"\nup = "1Mbit"', "after_quota.up"),                # as fast as normal
    (f'{THROTTLE}down = "256kbit"', "after_quota.up"),                               # missing
    (f'{THROTTLE}down = "256kbit"\nup = "128kbit"\napplies_to = ["daily_time"]', "after_quota.applies_to"),
    (f'{THROTTLE}down = "256kbit"\nup = "128kbit"\napplies_to = ["monthly_data"]', "after_quota.applies_to"),
    (f'{THROTTLE}down = "256kbit"\nup = "128kbit"\napplies_to = []', "after_quota.applies_to"),
    (f'{THROTTLE}down = "256kbit"\nup = "128kbit"\napplies_to = "daily_data"', "after_quota.applies_to"),
    ('[limits]\ndaily_data = "1GB"\n[after_quota]\naction = "disconnect"\ndown = "256kbit"', "after_quota.down"),
    ('[limits]\ndaily_time = "2h"\n[bandwidth]\ndown = "5Mbit"\nup = "1Mbit"\n[after_quota]\naction = "throttle"\n'
     'down = "256kbit"\nup = "128kbit"', "after_quota"),                          # no data pool to throttle
    ('[limits]\ndaily_data = "1GB"\n[after_quota]\naction = "throttle"\ndown = "256kbit"\nup = "128kbit"',
     "bandwidth.down"),                                                            # no normal rate
])
def test_bad_values_are_errors_naming_file_and_key(tmp_path, body, key):
    message = load_error(tmp_path, f'name = "plaza"\n{body}\n')
    assert message.startswith("plaza.toml: "), message
    assert key in message, message


def test_a_daily_time_longer_than_the_monthly_time_is_an_error(tmp_path):
    message = load_error(tmp_path, 'name = "plaza"\n[limits]\ndaily_time = "3h"\nmonthly_time = "2h"\n')
    assert "plaza.toml" in message and "monthly_time" in message


def test_missing_name_invalid_toml_and_duplicate_names(tmp_path):
    assert "name" in load_error(tmp_path / "a", '[limits]\ndaily_time = "2h"\n', "sin-nombre.toml")
    assert "sin-nombre.toml" in load_error(tmp_path / "b", 'name = ""\n', "sin-nombre.toml")

    broken = load_error(tmp_path / "c", 'name = "plaza"\n[limits\ndaily_time = "2h"\n', "rota.toml")
    assert broken.startswith("rota.toml: ") and "TOML" in broken

    write(tmp_path / "d", "a-parque.toml", 'name = "parque"\n')
    duplicate = load_error(tmp_path / "d", 'name = "parque"\n', "b-parque.toml")
    assert duplicate.startswith("b-parque.toml: ") and "name" in duplicate and "a-parque.toml" in duplicate

    (tmp_path / "empty").mkdir()
    with pytest.raises(PolicyError, match="no .*toml"):
        load_policies(tmp_path / "empty")
    with pytest.raises(PolicyError, match="not found"):
        load_policies(tmp_path / "nowhere")


# --- evaluate: accept and the Session-Timeout -------------------------------------------------------------


def test_an_accept_carries_the_policy_caps(shipped, cut_off):
    d = evaluate(cut_off, Usage(), local(2026, 11, 26, 18, 0))
    assert d.accept and d.reason == "ok"
    assert (d.session_timeout, d.idle_timeout, d.interim_interval) == (HOUR, 600, 300)
    assert (d.data_left, d.rate_down, d.rate_up, d.slow_until) == (1 * GB, 5_000_000, 1_000_000, None)
    # A pool that throttles is no cap for the NAS: it would end the session there.
    throttled = evaluate(shipped["parque"], Usage(), local(2026, 11, 26, 18, 0))
    assert (throttled.accept, throttled.data_left, throttled.rate_down, throttled.message) == (True, None, 5 * MB, "")

    personal = evaluate(shipped["personal"], Usage(day_seconds=20 * HOUR, month_bytes=500 * GB),
                        local(2026, 11, 26, 3, 0))
    assert personal.accept and personal.session_timeout == 24 * HOUR and personal.data_left is None


@pytest.mark.parametrize(("usage", "when", "expected"), [
    (Usage(), (18, 0), HOUR),                                             # the session cap
    (Usage(day_seconds=HOUR + 50 * 60), (18, 0), 10 * 60),               # time left today
    (Usage(day_seconds=HOUR, month_seconds=40 * HOUR - 300), (18, 0), 300),   # time left this month
    (Usage(), (22, 30), 30 * 60),                                         # time to closing at 23:00
    (Usage(day_seconds=HOUR + 45 * 60), (22, 50), 10 * 60),              # closing beats 15 min left
    (Usage(), (22, 59, 59), 1),
])
def test_session_timeout_is_the_least_of_all_limits(shipped, usage, when, expected):
    d = evaluate(shipped["parque"], usage, local(2026, 11, 26, *when))
    assert d.accept, d
    assert d.session_timeout == expected


@pytest.mark.parametrize(("usage", "expected"), [
    (Usage(day_bytes=300 * MB, month_bytes=19_500 * MB), 500 * MB),     # the month is tighter
    (Usage(day_bytes=800 * MB, month_bytes=1 * GB), 200 * MB),          # the day is tighter
    (Usage(), 1 * GB),
])
def test_data_left_is_the_least_of_daily_and_monthly(cut_off, usage, expected):
    assert evaluate(cut_off, usage, local(2026, 11, 26, 12, 0)).data_left == expected


def test_ejido_has_only_a_monthly_data_pool(shipped):
    d = evaluate(shipped["ejido"], Usage(day_bytes=9 * GB, month_bytes=28 * GB, day_seconds=20 * HOUR),
                 local(2026, 11, 26, 3, 0))
    assert d.accept and d.data_left == 2 * GB and d.session_timeout == 12 * HOUR


# --- evaluate: rejects in plain Spanish -------------------------------------------------------------------


@pytest.mark.parametrize(("usage", "when", "reason", "message"), [
    (Usage(day_seconds=2 * HOUR), (2026, 11, 26, 18, 0), "daily_time",
     "Usaste tus 2 horas de hoy. Vuelve a partir de las 00:00."),
    (Usage(day_seconds=2 * HOUR + 90), (2026, 11, 26, 18, 0), "daily_time",
     "Usaste tus 2 horas de hoy. Vuelve a partir de las 00:00."),
    (Usage(day_bytes=1 * GB), (2026, 11, 26, 18, 0), "daily_data",
     "Usaste tus 1 GB de hoy. Vuelve a partir de las 00:00."),
    (Usage(month_seconds=40 * HOUR), (2026, 11, 26, 18, 0), "monthly_time",
     "Usaste tus 40 horas de este mes. Vuelve a partir del 1 de diciembre."),
    (Usage(month_bytes=20 * GB), (2026, 12, 31, 22, 0), "monthly_data",
     "Usaste tus 20 GB de este mes. Vuelve a partir del 1 de enero."),
    (Usage(), (2026, 11, 26, 5, 59), "closed",
     "El servicio en este lugar abre de 06:00 a 23:00. Vuelve a partir de las 06:00."),
    (Usage(), (2026, 11, 26, 23, 0), "closed",
     "El servicio en este lugar abre de 06:00 a 23:00. Vuelve a partir de las 06:00."),
    (Usage(open_sessions=2), (2026, 11, 26, 18, 0), "devices",
     "Ya tienes 2 dispositivos conectados, el máximo. Desconecta uno para entrar con este."),
])
def test_rejects_name_the_limit_and_the_reset(cut_off, usage, when, reason, message):
    d = evaluate(cut_off, usage, local(*when))
    assert not d.accept
    assert (d.reason, d.message) == (reason, message)


def test_one_device_fewer_than_the_limit_is_accepted(shipped):
    assert evaluate(shipped["parque"], Usage(open_sessions=1), local(2026, 11, 26, 18, 0)).accept


# --- evaluate: the slow lane ([after_quota] throttle) -------------------------------------------------------


@pytest.mark.parametrize(("usage", "when", "reason", "message", "until"), [
    (Usage(day_bytes=1 * GB), (2026, 11, 26, 18, 0), "daily_data",
     "Usaste tu giga de hoy: sigues conectado a velocidad reducida hasta las 00:00.", (2026, 11, 27)),
    (Usage(day_bytes=1 * GB + 1), (2026, 11, 26, 22, 0), "daily_data",
     "Usaste tu giga de hoy: sigues conectado a velocidad reducida hasta las 00:00.", (2026, 11, 27)),
    (Usage(day_bytes=1 * GB, month_bytes=20 * GB), (2026, 12, 31, 18, 0), "monthly_data",   # the later reset
     "Usaste tus 20 GB de este mes: sigues conectado a velocidad reducida hasta el 1 de enero.", (2027, 1, 1)),
    (Usage(day_bytes=200 * MB, month_bytes=20 * GB), (2026, 11, 26, 18, 0), "monthly_data",
     "Usaste tus 20 GB de este mes: sigues conectado a velocidad reducida hasta el 1 de diciembre.", (2026, 12, 1)),
])
def test_a_spent_pool_that_throttles_accepts_in_the_slow_lane(shipped, usage, when, reason, message, until):
    d = evaluate(shipped["parque"], usage, local(*when))
    assert d.accept and (d.reason, d.message) == (reason, message)
    assert (d.rate_down, d.rate_up, d.data_left) == (256_000, 128_000, None)       # no data cap in the slow lane
    assert d.slow_until == local(*until, 0, 0)
    assert d.session_timeout == min(HOUR, int((local(*when).replace(hour=23) - local(*when)).total_seconds()) or HOUR)


def test_the_slow_lane_keeps_time_limits_hours_and_devices(shipped):
    parque = shipped["parque"]
    spent_data = Usage(day_bytes=2 * GB, day_seconds=HOUR + 50 * 60)
    d = evaluate(parque, spent_data, local(2026, 11, 26, 18, 0))
    assert d.accept and d.session_timeout == 10 * 60                         # the 2 h a day still count
    assert evaluate(parque, replace(spent_data, day_seconds=2 * HOUR), local(2026, 11, 26, 18, 0)).reason == \
        "daily_time"
    assert evaluate(parque, spent_data, local(2026, 11, 26, 23, 30)).reason == "closed"
    assert evaluate(parque, replace(spent_data, open_sessions=2), local(2026, 11, 26, 18, 0)).reason == "devices"
    english = evaluate(parque, spent_data, local(2026, 11, 26, 18, 0), "en")
    assert english.message == "You used today's gigabyte: you stay online at reduced speed until 00:00."


def test_a_pool_left_out_of_applies_to_still_ends_the_session(tmp_path):
    write(tmp_path, "p.toml", 'name = "p"\n[limits]\ndaily_data = "1GB"\nmonthly_data = "20GB"\n[bandwidth]\n'
                              'down = "5Mbit"\nup = "1Mbit"\n[after_quota]\naction = "throttle"\ndown = "256kbit"\n'
                              'up = "128kbit"\napplies_to = ["daily_data"]\n')
    policy = load_policies(tmp_path)["p"]
    now = local(2026, 11, 26, 12, 0)
    d = evaluate(policy, Usage(day_bytes=1 * GB, month_bytes=19 * GB), now)
    assert d.accept and d.slow_until is not None and d.data_left == 1 * GB     # the month still caps
    month = evaluate(policy, Usage(day_bytes=1 * GB, month_bytes=20 * GB), now)
    assert not month.accept and month.reason == "monthly_data"
    counters = {c.name: c for c in COUNTERS}
    # Mid-session, a pool that ends the session comes before one that only slows it down.
    assert spent(policy, Usage(day_bytes=1 * GB, month_bytes=20 * GB)) == counters["monthly_data"]
    assert spent(policy, Usage(day_bytes=1 * GB)) == counters["daily_data"]
    assert spent(policy, Usage(day_bytes=1 * GB, day_seconds=10)) == counters["daily_data"]
    assert spent(policy, Usage()) is None


def test_opening_hours_across_midnight():
    night = policy_from_dict({"name": "noche", "hours": {"open": "18:00", "close": "02:00"}}, "noche.toml")
    cases = {(17, 59): None, (18, 0): 8 * HOUR, (23, 30): 2 * HOUR + 30 * 60, (0, 0): 2 * HOUR,
             (1, 0): HOUR, (2, 0): None, (12, 0): None}
    for (hour, minute), timeout in cases.items():
        d = evaluate(night, Usage(), local(2026, 11, 26, hour, minute))
        if timeout is None:
            assert not d.accept and d.reason == "closed", (hour, minute, d)
            assert d.message == "El servicio en este lugar abre de 18:00 a 02:00. Vuelve a partir de las 18:00."
        else:
            assert d.accept and d.session_timeout == timeout, (hour, minute, d)


def test_time_to_closing_counts_real_seconds_on_the_night_dst_ends():
    # Tijuana keeps daylight saving time; on 2026-11-01 clocks go from 02:00 PDT back to 01:00 PST,
    # so from 00:30 PDT to closing at 02:00 PST there are two and a half hours.
    night = policy_from_dict({"name": "noche", "hours": {"open": "18:00", "close": "02:00"}}, "noche.toml")
    now = datetime(2026, 11, 1, 0, 30, tzinfo=ZoneInfo("America/Tijuana"))
    assert evaluate(night, Usage(), now).session_timeout == 2 * HOUR + 30 * 60


# --- quotas reset at local midnight -----------------------------------------------------------------------


def test_period_keys_follow_the_local_day_not_utc():
    def keys(*utc: int) -> tuple[str, str]:
        return period_keys(datetime(*utc, tzinfo=timezone.utc).astimezone(MX))

    # Mexico City is UTC-6: the local day starts at 06:00 UTC
    assert keys(2026, 11, 27, 0, 30) == ("20261126", "202611")     # already the 27th in UTC
    assert keys(2026, 11, 27, 5, 59, 59) == ("20261126", "202611")
    assert keys(2026, 11, 27, 6, 0, 0) == ("20261127", "202611")
    assert keys(2026, 12, 1, 5, 30) == ("20261130", "202611")      # still November locally
    assert keys(2026, 12, 1, 6, 0, 1) == ("20261201", "202612")


def test_next_reset_is_the_next_local_midnight():
    now = datetime(2026, 11, 27, 5, 59, 59, tzinfo=timezone.utc).astimezone(MX)   # 23:59:59 on the 26th
    day = next_reset("day", now)
    assert day == local(2026, 11, 27, 0, 0)
    assert day.astimezone(timezone.utc) == datetime(2026, 11, 27, 6, 0, tzinfo=timezone.utc)
    assert next_reset("month", now) == local(2026, 12, 1, 0, 0)
    assert next_reset("month", local(2026, 12, 31, 23, 0)) == local(2027, 1, 1, 0, 0)
    assert next_reset("month", local(2027, 1, 31, 12, 0)) == local(2027, 2, 1, 0, 0)
    assert next_reset("day", local(2027, 2, 28, 0, 0)) == local(2027, 3, 1, 0, 0)
