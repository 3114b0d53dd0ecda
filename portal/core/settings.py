"""One frozen Settings object: environment variables over an optional TOML file, validated once."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from policies import POLICY_DIR


class SettingsError(ValueError):
    """A setting that is missing, malformed or unsafe."""


@dataclass(frozen=True)
class Settings:
    """Everything a Conecta process needs to know; pass it, never read the environment again."""

    data_dir: Path
    database_url: str
    redis_url: str | None
    secret_key: str
    env: str
    radius_host: str
    radius_auth_port: int
    radius_acct_port: int
    portal_host: str
    portal_port: int
    policy_dir: Path
    timezone: str
    # Citizens behind a NAS that NATs share one address: keep this generous; the per-MAC limit is strict.
    portal_ip_limit: str = "120/minute"
    node_down_after: float = 3.0   # RADIUS traffic counts as quiet after this many interim intervals
    # The monitor (issue 9): probe every NAS every `monitor_interval` seconds; down after
    # `monitor_confirmations` failed probes in a row, each given `probe_timeout` seconds.
    monitor_interval: float = 30.0
    monitor_confirmations: int = 3
    probe_timeout: float = 2.0
    # Alerts: changes within `alert_group_seconds` go out as one message; a NAS that changed state
    # `flap_changes` times within `flap_window` seconds is flapping: one alert, then quiet until it settles.
    alert_group_seconds: float = 60.0
    flap_changes: int = 4
    flap_window: float = 1800.0
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "conecta@localhost"
    smtp_starttls: bool = False
    alert_webhook_url: str | None = None
    alert_webhook_chat_id: str | None = None    # Telegram's sendMessage needs it in the JSON body
    # Prometheus: the aggregate of every process's metrics on this address (port 0: off), and on the
    # portal's /metrics for loopback peers or a bearer token.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    metrics_token: str | None = None
    # RADIUS: a reply that cannot be made twice (a one-time credential's) is kept for the NAS's whole
    # retry window; every other reply 5 s, as FreeRADIUS's cleanup_delay (issue 11).
    radius_retry_window: float = 30.0
    # Hosts (and their subdomains), comma-separated, that a citizen is sent to after logging in; any other
    # page they had asked for is a link on the status page, never a redirect.
    redirect_allowlist: str = ""

    @property
    def production(self) -> bool:
        """True when unsafe defaults must be refused."""
        return self.env == "production"

    @property
    def redirect_hosts(self) -> tuple[str, ...]:
        """The allowlist of redirect_allowlist, as lower-case host names."""
        return tuple(h.strip().lower() for h in self.redirect_allowlist.split(",") if h.strip())

    @property
    def tz(self) -> ZoneInfo:
        """The local time zone in which daily and monthly quotas reset."""
        return ZoneInfo(self.timezone)


_DEFAULTS = {
    "data_dir": "./instance", "database_url": "", "redis_url": "", "secret_key": "",
    "env": "development", "radius_host": "0.0.0.0", "radius_auth_port": "1812",
    "radius_acct_port": "1813", "portal_host": "0.0.0.0", "portal_port": "8080",
    "policy_dir": str(POLICY_DIR), "timezone": "America/Mexico_City", "portal_ip_limit": "120/minute",
    "node_down_after": "3",
    "monitor_interval": "30", "monitor_confirmations": "3", "probe_timeout": "2", "alert_group_seconds": "60",
    "flap_changes": "4", "flap_window": "1800", "smtp_host": "", "smtp_port": "25", "smtp_user": "",
    "smtp_password": "", "smtp_from": "conecta@localhost", "smtp_starttls": "no", "alert_webhook_url": "",
    "alert_webhook_chat_id": "",
    "metrics_host": "127.0.0.1", "metrics_port": "9464", "metrics_token": "", "radius_retry_window": "30",
    "redirect_allowlist": "",
}
# Numeric settings: (type, least, most).
_NUMBERS = {"monitor_interval": (float, 0.2, 3600), "monitor_confirmations": (int, 1, 20),
            "probe_timeout": (float, 0.05, 60), "alert_group_seconds": (float, 0, 3600),
            "flap_changes": (int, 2, 100), "flap_window": (float, 1, 86400),
            "radius_retry_window": (float, 30, 3600)}


def _raw_values(environ: dict[str, str]) -> dict[str, str]:
    values = dict(_DEFAULTS)
    config = environ.get("CONECTA_CONFIG")
    if config:
        try:
            data = tomllib.loads(Path(config).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"CONECTA_CONFIG {config}: {exc}") from None
        for key, value in data.items():
            if key not in values:
                raise SettingsError(f"CONECTA_CONFIG {config}: unknown setting {key!r}")
            values[key] = str(value)
    for key in values:
        env_value = environ.get("CONECTA_" + key.upper())
        if env_value is not None:
            values[key] = env_value
    return values


def _port(name: str, value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise SettingsError(f"CONECTA_{name.upper()}: {value!r} is not a port number")
    return int(value)


def _secret_key(values: dict[str, str], data_dir: Path) -> str:
    if values["secret_key"]:
        if len(values["secret_key"]) < 32 and values["env"] == "production":
            raise SettingsError("CONECTA_SECRET_KEY must be at least 32 characters in production")
        return values["secret_key"]
    if values["env"] == "production":
        raise SettingsError("CONECTA_SECRET_KEY is required in production")
    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read CONECTA_* variables (over the CONECTA_CONFIG TOML file) into a validated Settings."""
    values = _raw_values(dict(os.environ if environ is None else environ))
    if values["env"] not in ("development", "production"):
        raise SettingsError(f"CONECTA_ENV: {values['env']!r} is not development or production")
    data_dir = Path(values["data_dir"]).expanduser().resolve()
    database_url = values["database_url"] or f"sqlite:///{data_dir / 'conecta.db'}"
    if not database_url.startswith(("sqlite:", "postgresql")):
        raise SettingsError("CONECTA_DATABASE_URL must be sqlite:///… or postgresql+psycopg://…")
    _check_redis_url(values["redis_url"])
    for host_key in ("radius_host", "portal_host"):
        try:
            ipaddress.ip_address(values[host_key])
        except ValueError:
            raise SettingsError(f"CONECTA_{host_key.upper()}: {values[host_key]!r} is not an IP address") from None
    try:
        ZoneInfo(values["timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"CONECTA_TIMEZONE: unknown time zone {values['timezone']!r}") from None
    return Settings(
        data_dir=data_dir, database_url=database_url, redis_url=values["redis_url"] or None,
        secret_key=_secret_key(values, data_dir), env=values["env"],
        radius_host=values["radius_host"],
        radius_auth_port=_port("radius_auth_port", values["radius_auth_port"]),
        radius_acct_port=_port("radius_acct_port", values["radius_acct_port"]),
        portal_host=values["portal_host"], portal_port=_port("portal_port", values["portal_port"]),
        policy_dir=Path(values["policy_dir"]).expanduser().resolve(), timezone=values["timezone"],
        portal_ip_limit=_rate_limit(values["portal_ip_limit"]),
        node_down_after=_multiple(values["node_down_after"]),
        redirect_allowlist=_hosts(values["redirect_allowlist"]),
        **_monitoring(values),
    )


def _check_redis_url(url: str) -> None:
    """redis://, rediss://, unix:// or redis+sentinel://HOST:PORT[,HOST:PORT…]/MASTER-NAME[/DB]."""
    if not url:
        return
    if url.startswith("redis+sentinel://"):
        from portal.core.redisconn import parse_sentinel_url  # it imports this module
        try:
            parse_sentinel_url(url)
        except ValueError as exc:
            raise SettingsError(f"CONECTA_REDIS_URL: {exc}") from None
    elif not url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError("CONECTA_REDIS_URL must be redis://…, rediss://…, unix://… or redis+sentinel://…")


def _monitoring(values: dict[str, str]) -> dict:
    """The monitor's, the alerts' and the metrics' settings, checked."""
    numbers = {key: _number(key, values[key], *limits) for key, limits in _NUMBERS.items()}
    if numbers["probe_timeout"] >= numbers["monitor_interval"]:
        raise SettingsError("CONECTA_PROBE_TIMEOUT must be shorter than CONECTA_MONITOR_INTERVAL")
    if values["smtp_starttls"] not in ("yes", "no"):
        raise SettingsError(f"CONECTA_SMTP_STARTTLS: {values['smtp_starttls']!r} is not yes or no")
    webhook = values["alert_webhook_url"].strip()
    if webhook and not re.fullmatch(r"https?://[^\s/]+\S*", webhook):
        raise SettingsError("CONECTA_ALERT_WEBHOOK_URL must be an http:// or https:// URL")
    try:
        ipaddress.ip_address(values["metrics_host"])
    except ValueError:
        raise SettingsError(f"CONECTA_METRICS_HOST: {values['metrics_host']!r} is not an IP address") from None
    token = values["metrics_token"]
    if token and len(token) < 16:
        raise SettingsError("CONECTA_METRICS_TOKEN must be at least 16 characters")
    optional = {key: values[key] or None for key in ("smtp_host", "smtp_user", "smtp_password",
                                                     "alert_webhook_chat_id")}
    return {**numbers, **optional, "smtp_port": _port("smtp_port", values["smtp_port"]),
            "smtp_from": values["smtp_from"], "smtp_starttls": values["smtp_starttls"] == "yes",
            "alert_webhook_url": webhook or None, "metrics_host": values["metrics_host"],
            "metrics_port": _port("metrics_port", values["metrics_port"]), "metrics_token": token or None}


def _number(key: str, value: str, kind: type, least: float, most: float) -> float | int:
    try:
        number = kind(value)
    except ValueError:
        number = None
    if number is None or not least <= number <= most:
        raise SettingsError(f"CONECTA_{key.upper()}: {value!r} is not a {kind.__name__} from {least} to {most}")
    return number


def _multiple(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0
    if not 1 <= number <= 100:
        raise SettingsError(f"CONECTA_NODE_DOWN_AFTER: {value!r} is not a number from 1 to 100")
    return number


def _hosts(value: str) -> str:
    hosts = [h.strip().lower() for h in value.split(",") if h.strip()]
    for host in hosts:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?", host) or ".." in host:
            raise SettingsError(f"CONECTA_REDIRECT_ALLOWLIST: {host!r} is not a host name")
    return ",".join(hosts)


def _rate_limit(value: str) -> str:
    if not re.fullmatch(r"\d+\s*/\s*(second|minute|hour|day)", value.strip()):
        raise SettingsError(f"CONECTA_PORTAL_IP_LIMIT: {value!r} is not like '120/minute'")
    return value.strip()


def settings_env(settings: Settings) -> dict[str, str]:
    """The CONECTA_* variables that reproduce `settings` in a child process."""
    env = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, bool):
            value = "yes" if value else "no"
        if value is not None:
            env["CONECTA_" + f.name.upper()] = str(value)
    return env
