"""SQLAlchemy 2 models, shared by the web portal, the CLI and the RADIUS daemon (no Flask here)."""

from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SITE_KINDS = ("park", "plaza", "ejido", "digital-center")
VENDORS = ("coova", "opennds", "mikrotik", "pfsense", "unifi", "generic")
# What a NAS's Acct-Input-Octets count: RFC 2866 says the octets received from the client's port (its
# upload); CoovaChilli counts the octets sent to the client there unless HS_SWAPOCTETS=on.
OCTETS_DIRECTIONS = ("input-is-upload", "input-is-download")
GENDERS = ("female", "male", "nonbinary", "undisclosed")
AGE_BANDS = ("0-17", "18-29", "30-44", "45-59", "60+", "undisclosed")
STAFF_ROLES = ("admin", "analyst")


def default_octets_direction(vendor: str) -> str:
    """What the vendor reports out of the box: CoovaChilli's Acct-Input-Octets are the client's download."""
    return "input-is-download" if vendor == "coova" else "input-is-upload"


def utcnow() -> datetime:
    """Naive UTC now: every timestamp column holds UTC without a zone, on SQLite and PostgreSQL."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    """Declarative base; Flask-SQLAlchemy uses it as model_class."""


class Site(Base):
    """A place with hotspots: a park, plaza, ejido or digital access center."""

    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    policy: Mapped[str] = mapped_column(String(64))
    planned_gb_month: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    communities: Mapped[str | None] = mapped_column(Text)  # one per line, offered at registration
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Nas(Base):
    """An access point or gateway allowed to talk RADIUS."""

    __tablename__ = "nas"
    __table_args__ = (UniqueConstraint("nas_identifier", name="uq_nas_nas_identifier"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    ip: Mapped[str] = mapped_column(String(45), unique=True)
    secret: Mapped[str] = mapped_column(String(128))
    vendor: Mapped[str] = mapped_column(String(20))
    coa_port: Mapped[int] = mapped_column(Integer, default=3799)
    uam_secret: Mapped[str | None] = mapped_column(String(128))
    require_message_authenticator: Mapped[bool] = mapped_column(Boolean, default=True)
    # How the monitor checks it answers (portal/core/probes.py): icmp | tcp:PORT | http(s)://… | none.
    probe: Mapped[str] = mapped_column(String(255), default="icmp", server_default="icmp")
    last_seen: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Host names (besides private IPs and its own) that the portal may hand credentials to.
    login_hosts: Mapped[str | None] = mapped_column(String(255))
    # The NAS-Identifier it calls itself (CoovaChilli's HS_NASID, sent as `nasid` in its redirects).
    nas_identifier: Mapped[str | None] = mapped_column(String(64))
    octets_direction: Mapped[str] = mapped_column(String(20), default="input-is-upload",
                                                  server_default="input-is-upload")
    # openNDS only: its FAS security level (fas_secure_enabled, 0-3) and faskey, which also signs the
    # usage reports of its BinAuth script (portal/core/opennds.py).
    fas_level: Mapped[int | None] = mapped_column(Integer)
    faskey: Mapped[str | None] = mapped_column(String(64))


class User(Base):
    """A person's account: created by staff, imported, or registered at the portal."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # Kept recoverable, like FreeRADIUS's Cleartext-Password: CHAP cannot work from a hash.
    password: Mapped[str | None] = mapped_column(String(128))
    policy: Mapped[str | None] = mapped_column(String(64))
    gender: Mapped[str] = mapped_column(String(12), default="undisclosed")
    age_band: Mapped[str] = mapped_column(String(12), default="undisclosed")
    community: Mapped[str | None] = mapped_column(String(80))
    source: Mapped[str] = mapped_column(String(12), default="staff")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # A citizen's own PIN or password for the portal: only the portal checks it, so a hash suffices.
    pin_hash: Mapped[str | None] = mapped_column(String(255))
    consent_version: Mapped[str | None] = mapped_column(String(16))   # privacy notice accepted
    consent_at: Mapped[datetime | None] = mapped_column(DateTime)
    guardian_consent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # LFPDPPP art. 8


class Device(Base):
    """A client device (MAC) remembered for a person, for MAC authentication."""

    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    mac: Mapped[str] = mapped_column(String(17), unique=True)
    mac_auth: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[datetime | None] = mapped_column(DateTime)


class Session(Base):
    """One accounting session as the NAS reports it; the record of truth for usage.

    A NAS may give a used Acct-Session-Id to a later session (CoovaChilli's ids are the second and
    the port, MikroTik's restart after a reboot): each session that begins after the last one with
    that id stopped is a new generation, a row of its own."""

    __tablename__ = "sessions"
    __table_args__ = (UniqueConstraint("nas_id", "acct_session_id", "generation",
                                       name="uq_sessions_nas_session_generation"),
                      Index("ix_sessions_open_user", "is_open", "user_id"),
                      Index("ix_sessions_acct_session_id", "acct_session_id"))
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    nas_id: Mapped[int] = mapped_column(Integer)  # no FK: history outlives a replaced NAS
    site_id: Mapped[int] = mapped_column(Integer)
    acct_session_id: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The Request Authenticator (hex) of its Start; None until the Start comes (a Start after its own
    # session's Stop, lost and resent, is that session's, not a new one).
    start_key: Mapped[str | None] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    username: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str | None] = mapped_column(String(17))
    framed_ip: Mapped[str | None] = mapped_column(String(45))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime)
    seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)    # from the client (upload)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)   # to the client (download)
    terminate_cause: Mapped[str | None] = mapped_column(String(32))
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    # In the slow lane since (a spent pool, after_quota throttle): from the login, or from a CoA-ACK.
    slow_since: Mapped[datetime | None] = mapped_column(DateTime)


class AcctRecord(Base):
    """Every accounting packet acknowledged, once (dedup is a digest of its identity and counters)."""

    __tablename__ = "acct_records"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    dedup: Mapped[str] = mapped_column(String(32), unique=True)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    nas_id: Mapped[int] = mapped_column(Integer)
    acct_session_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[int | None] = mapped_column(Integer)
    seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)
    delay: Mapped[int] = mapped_column(Integer, default=0)


class UsageFigures:
    """The figures both rollups keep, with gender and age-band snapshots taken at ingest (reports
    need no join, and stay right after a person deletes their data)."""

    sessions: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_down: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_up: Mapped[int] = mapped_column(BigInteger, default=0)
    gender: Mapped[str] = mapped_column(String(12), default="undisclosed", server_default="undisclosed")
    age_band: Mapped[str] = mapped_column(String(12), default="undisclosed", server_default="undisclosed")
    # The slow lane: sessions that entered it (at login or by CoA) and the bytes used while in it.
    slow_sessions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    slow_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class UsageDaily(UsageFigures, Base):
    """Per person, site and local day: the rollup that counters and reports are rebuilt from."""

    __tablename__ = "usage_daily"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)
    site_id: Mapped[int] = mapped_column(Integer, primary_key=True)


class Disconnect(Base):
    """A Disconnect-Request (RFC 5176) sent to a NAS, and what came of it."""

    __tablename__ = "disconnects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), index=True)
    nas_id: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))
    requested_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[str] = mapped_column(String(12), default="pending")  # ack | nak | timeout | no-coa
    error_cause: Mapped[int | None] = mapped_column(Integer)            # RFC 5176 Error-Cause of a NAK


COA_ACTIONS = ("slow", "restore")


class CoaRequest(Base):
    """A CoA-Request (RFC 5176) that changed a session's rates: into the slow lane or back out."""

    __tablename__ = "coa_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), index=True)
    nas_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(12))                     # slow | restore
    reason: Mapped[str] = mapped_column(String(32))                     # the spent pool, e.g. daily_data
    requested_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[str] = mapped_column(String(12), default="pending")  # ack | nak | timeout | no-coa
    error_cause: Mapped[int | None] = mapped_column(Integer)
    disconnect_id: Mapped[int | None] = mapped_column(Integer)          # the fallback Disconnect-Request


class Staff(Base):
    """A staff login for the console; the password is an argon2 hash."""

    __tablename__ = "staff"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(12))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


FAULT_CATEGORIES = ("no-signal", "slow", "cannot-login", "damaged", "other")
FAULT_STATUSES = ("new", "in-progress", "resolved")


class FaultReport(Base):
    """A citizen's report of a fault at a site; holds no personal data."""

    __tablename__ = "fault_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    nas_id: Mapped[int | None] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(12), default="new")
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class StaffSession(Base):
    """A signed-in staff browser; deleting the row revokes the cookie on the server."""

    __tablename__ = "staff_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AuditEntry(Base):
    """Who did what, when: every staff action and refused authorization."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(200), default="")
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    address: Mapped[str] = mapped_column(String(45), default="")


class UsageMonthly(UsageFigures, Base):
    """Per person, site and local month: what month-wide reports read (a few rows per person)."""

    __tablename__ = "usage_monthly"
    month: Mapped[str] = mapped_column(String(7), primary_key=True)     # '2026-11'
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(Integer, primary_key=True)


# --- Node health (issue 9): what the monitor saw, what it told people -----------------------------------

NODE_STATES = ("pending", "up", "failing", "down", "unprobed")   # pending: not probed yet
EVENT_STATES = ("up", "down", "unprobed")                          # the periods of a node's history
ALERT_CHANNELS = ("email", "webhook")


class NodeState(Base):
    """The monitor's view of one NAS now; it survives a restart of the monitor."""

    __tablename__ = "node_state"
    nas_id: Mapped[int] = mapped_column(Integer, primary_key=True)   # no FK: the monitor drops it with the NAS
    state: Mapped[str] = mapped_column(String(10))
    since: Mapped[datetime] = mapped_column(DateTime)                 # down: since the first failed probe
    failures: Mapped[int] = mapped_column(Integer, default=0)         # consecutive
    first_failure_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_probe_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_ok_at: Mapped[datetime | None] = mapped_column(DateTime)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[str | None] = mapped_column(String(120))           # why the last probe failed
    notified: Mapped[str | None] = mapped_column(String(10))          # the last state alerts told
    period: Mapped[str | None] = mapped_column(String(10))            # the state of its open node_events row


class NodeEvent(Base):
    """One period of a NAS's history (up, down or unprobed), from start to end (open while it lasts)."""

    __tablename__ = "node_events"
    __table_args__ = (Index("ix_node_events_nas_started", "nas_id", "started_at"),
                      Index("ix_node_events_started", "started_at"))
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    nas_id: Mapped[int] = mapped_column(Integer)       # no FK: history outlives a removed NAS
    site_id: Mapped[int] = mapped_column(Integer)
    nas_name: Mapped[str] = mapped_column(String(80))  # as it was called then
    state: Mapped[str] = mapped_column(String(10))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)


class MonitorStatus(Base):
    """The one monitor at work: its lease epoch (a fencing token) and heartbeat."""

    __tablename__ = "monitor_status"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    holder: Mapped[str] = mapped_column(String(120), default="")
    heartbeat: Mapped[datetime | None] = mapped_column(DateTime)
    interval: Mapped[float] = mapped_column(Float, default=30.0)


class MaintenanceWindow(Base):
    """A planned outage at a site: no alerts while it lasts."""

    __tablename__ = "maintenance_windows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime] = mapped_column(DateTime)
    ends_at: Mapped[datetime] = mapped_column(DateTime)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(254), default="")


class AlertSubscription(Base):
    """A staff member who receives the e-mail alerts of a site."""

    __tablename__ = "alert_subscriptions"
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)


class AlertNotice(Base):
    """A confirmed change to tell people about (down, up, flapping), waiting to be grouped into alerts."""

    __tablename__ = "alert_notices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    nas_id: Mapped[int] = mapped_column(Integer)
    site_id: Mapped[int] = mapped_column(Integer)
    nas_name: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(10))
    since: Mapped[datetime] = mapped_column(DateTime)          # when the state began
    alert_batch: Mapped[int | None] = mapped_column(Integer)   # null: not grouped yet


class Alert(Base):
    """One message to one recipient (an e-mail address or the webhook), and what came of sending it."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch: Mapped[int] = mapped_column(Integer, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    channel: Mapped[str] = mapped_column(String(10))
    recipient: Mapped[str] = mapped_column(String(254))        # an address, or the webhook's host
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    payload: Mapped[str | None] = mapped_column(Text)          # the webhook's JSON
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)  # pending|sending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)


class CitySetting(Base):
    """One value of the city's identity: its name, the program's, the SSID, contact and privacy notice
    fields (portal/core/identity.py says which keys exist)."""

    __tablename__ = "city_settings"
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class CityLogo(Base):
    """The city's logo, one row: re-encoded as PNG when it was set, so what is served is what was checked."""

    __tablename__ = "city_logo"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    digest: Mapped[str] = mapped_column(String(64))   # sha256: the URL and the ETag
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class PrivacyNotice(Base):
    """A version of the privacy notice as published (its fields as JSON): a person's consent names one."""

    __tablename__ = "privacy_notices"
    version: Mapped[str] = mapped_column(String(16), primary_key=True)
    published_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    fields: Mapped[str] = mapped_column(Text)
