"""The systems under test: Conecta (PostgreSQL + Redis), FreeRADIUS 3.2 (files, hotspot stacks), bare pyrad."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import packets
from procs import Server, StartError, port_in_use

REFERENCE = Path(os.environ.get("CONECTA_BENCH_REFERENCE", "/work/shared/bench"))
VENV_BIN = Path(sys.executable).parent
PG_HOST = "postgresql://postgres@127.0.0.1:5432"
BENCH_DB = "conecta_bench"
REDIS_URL = "redis://127.0.0.1:6379/14"
CONECTA_PORTS = (18123, 18133)
FREERADIUS_PORTS = (18121, 18131)
PYRAD_PORTS = (18122, 18132)
APT_PACKAGES = ["freeradius", "freeradius-postgresql", "freeradius-utils", "postgresql"]


@dataclass
class Target:
    """A running system the load generator can drive."""

    name: str
    auth_port: int
    acct_port: int
    secret: bytes
    users: list[tuple[str, str]]
    server: Server
    notes: list[str] = field(default_factory=list)
    companions: list[Target] = field(default_factory=list)   # other rows served by the same process


def _free(ports: tuple[int, int], name: str) -> None:
    busy = [p for p in ports if port_in_use(p)]
    if busy:
        raise StartError(f"{name}: UDP port(s) {busy} already in use on 127.0.0.1 (a leftover server?)")


# --- Conecta -------------------------------------------------------------------------------

# The quota policy of the main Conecta row: what rlm_sqlcounter checks on the FreeRADIUS side (daily
# time, daily data) and a device limit; no opening hours, so the result does not depend on the clock.
QUOTA_POLICY = """# The benchmark's quota policy (bench/systems.py writes it beside the shipped ones).
name = "cuota"
title = "Cuota diaria"
[limits]
daily_time = "2h"
daily_data = "1GB"
session_time = "1h"
idle_timeout = "10m"
devices = 2
[bandwidth]
down = "5Mbit"
up = "1Mbit"
[accounting]
interim_interval = "5m"
"""


def policy_dir(out: Path) -> Path:
    """The shipped policies plus the benchmark's quota policy."""
    from policies import POLICY_DIR
    folder = out / "conecta-policies"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(POLICY_DIR, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (folder / "cuota.toml").write_text(QUOTA_POLICY)
    return folder


def conecta_env(data_dir: Path, policies: Path) -> dict[str, str]:
    """The environment of every `conecta` command of the benchmark."""
    return {**os.environ, "CONECTA_POLICY_DIR": str(policies), "CONECTA_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{BENCH_DB}",
            "CONECTA_REDIS_URL": REDIS_URL, "CONECTA_DATA_DIR": str(data_dir),
            "CONECTA_RADIUS_HOST": "127.0.0.1", "CONECTA_RADIUS_AUTH_PORT": str(CONECTA_PORTS[0]),
            "CONECTA_RADIUS_ACCT_PORT": str(CONECTA_PORTS[1])}


def reset_stores() -> None:
    """A fresh `conecta_bench` database and an empty Redis db 14."""
    import psycopg
    import redis
    with psycopg.connect(f"{PG_HOST}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    redis.Redis.from_url(REDIS_URL).flushdb()


def drop_database() -> None:
    """Remove the benchmark database (and the Redis keys)."""
    import psycopg
    import redis
    with psycopg.connect(f"{PG_HOST}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    redis.Redis.from_url(REDIS_URL).flushdb()


def _user_defaults() -> dict:
    """Python-side column defaults of portal.core.model.User, so COPY fills what the ORM would."""
    from portal.core.model import User
    out = {}
    for col in User.__table__.columns:
        if col.primary_key or col.default is None or not hasattr(col.default, "arg"):
            continue
        out[col.name] = col.default.arg(None) if col.default.is_callable else col.default.arg
    return out


def seed_conecta(env: dict[str, str], groups: dict[str, list[tuple[str, str]]],
                 pg: str = f"{PG_HOST}/{BENCH_DB}") -> str:
    """A site and a coova NAS for 127.0.0.1 (portal.core.sites), then the users of each policy by COPY
    into the database `pg` (a psycopg URL); return the NAS secret."""
    import psycopg
    from sqlalchemy.orm import Session as DbSession

    from policies import POLICY_DIR, load_policies
    from portal.core import accounts, sites
    from portal.core.db import commit_or_explain, make_engine
    secret = secrets.token_hex(16)
    policies = load_policies(Path(env.get("CONECTA_POLICY_DIR") or POLICY_DIR))
    engine = make_engine(env["CONECTA_DATABASE_URL"])
    with DbSession(engine) as db:
        sites.add_site(db, policies, "Bench Park", "park", "personal")
        sites.add_nas(db, sites.NasSpec("bench-ap", "Bench Park", "127.0.0.1", secret, "coova"), production=False)
        commit_or_explain(db)
    engine.dispose()
    with psycopg.connect(pg) as conn:
        for policy, users in groups.items():
            fields = {**_user_defaults(), "source": "import", "disabled": False,
                      **accounts.validate_user({"username": users[0][0], "password": users[0][1],
                                                "policy": policy}, policies)}
            columns = list(fields)
            with conn.cursor().copy(f"COPY users ({', '.join(columns)}) FROM STDIN") as copy:
                for name, password in users:
                    fields["username"], fields["password"] = name, password
                    copy.write_row([fields[c] for c in columns])
        conn.execute("ANALYZE users")
    return secret


def start_conecta(out: Path, n_users: int) -> Target:
    """Reset the stores, `conecta init`, seed, and start `conecta radius` on 18123/18133.

    The row `conecta` draws from `n_users` accounts on the quota policy; `conecta-personal` (a
    companion served by the same process) from as many on `personal`, which has no time or data limit.
    """
    _free(CONECTA_PORTS, "conecta")
    data_dir = out / "conecta-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    env = conecta_env(data_dir, policy_dir(out))
    reset_stores()
    subprocess.run([str(VENV_BIN / "conecta"), "init"], env=env, check=True, capture_output=True)
    quota = packets.bench_users(n_users)
    personal = [(f"staff{i:06d}", f"clave{i:06d}") for i in range(1, n_users + 1)]
    secret = seed_conecta(env, {"cuota": quota, "personal": personal})
    server = Server("conecta", [str(VENV_BIN / "conecta"), "radius"], out / "conecta.log", env=env)
    server.wait_for(r"RADIUS listening", 60)
    what = f"NAS vendor coova, PostgreSQL + Redis db 14, {2 * n_users} accounts in all"
    target = Target("conecta", *CONECTA_PORTS, secret.encode(), quota, server,
                    [f"{n_users} users on policy cuota (daily time, daily data, 2 devices), {what}"])
    target.companions.append(Target("conecta-personal", *CONECTA_PORTS, secret.encode(), personal, server,
                                    [f"{n_users} users on policy personal (no time or data limit), {what}"]))
    return target


# --- FreeRADIUS ----------------------------------------------------------------------------

def freeradius_missing() -> list[str]:
    """What the FreeRADIUS reference needs and this machine lacks."""
    need = [b for b in ("freeradius", "radclient", "psql", "pg_ctlcluster", "bc", "ss") if not shutil.which(b)]
    if not Path("/usr/lib/freeradius/rlm_sql_postgresql.so").exists():
        need.append("freeradius-postgresql")
    return need


def ensure_freeradius() -> None:
    """Install the FreeRADIUS stack with apt-get when missing and possible (root); else raise."""
    missing = freeradius_missing()
    if not missing:
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {' '.join(APT_PACKAGES)} (missing: {', '.join(missing)})", flush=True)
        apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=apt_env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", *APT_PACKAGES, "bc", "iproute2"], env=apt_env, check=False)
        missing = freeradius_missing()
    if missing:
        raise StartError(f"FreeRADIUS reference needs {', '.join(missing)}: "
                         f"apt-get install -y {' '.join(APT_PACKAGES)} (as root)")


def start_freeradius(out: Path, setup: str) -> Target:
    """`freeradius_bench.sh serve SETUP` (18121/18131, secret testing123) with its seeded users."""
    ensure_freeradius()
    _free(FREERADIUS_PORTS + PYRAD_PORTS, setup)  # the script refuses to start if any of these is taken
    script = REFERENCE / "freeradius_bench.sh"
    server = Server(setup, ["bash", str(script), "serve", setup], out / f"{setup}.log")
    ready = server.wait_for(r"^ready: .*FreeRADIUS pid (\d+)", 300)
    server.server_pid = int(ready.group(1))
    users_file = server.wait_for(r"^users: (\S+)", 5).group(1)
    return Target(f"freeradius-{setup}", *FREERADIUS_PORTS, b"testing123", packets.read_users(users_file), server,
                  [f"FreeRADIUS 3.2 `{setup}` (freeradius_bench.sh serve)"])


# --- pyrad ceiling -------------------------------------------------------------------------

def start_pyrad(out: Path, impl: str) -> Target:
    """pyrad_ceiling.py --impl IMPL on 18122/18132 (accepts everything)."""
    _free(PYRAD_PORTS, f"pyrad-{impl}")
    script = REFERENCE / "pyrad_ceiling.py"
    server = Server(f"pyrad-{impl}", [sys.executable, str(script), "--impl", impl], out / f"pyrad-{impl}.log")
    server.wait_for(r"listening on", 30)
    return Target(f"pyrad-{impl}", *PYRAD_PORTS, b"testing123", packets.bench_users(10000), server,
                  [f"pyrad 2.6 {impl}, accept all, no storage"])


SYSTEMS = {
    "conecta": lambda out, cfg: start_conecta(out, cfg.users),
    "freeradius-files": lambda out, cfg: start_freeradius(out, "files"),
    "freeradius-sql-hotspot-idx": lambda out, cfg: start_freeradius(out, "sql-hotspot-idx"),
    "freeradius-sql-hotspot": lambda out, cfg: start_freeradius(out, "sql-hotspot"),
    "pyrad-sync": lambda out, cfg: start_pyrad(out, "sync"),
    "pyrad-async": lambda out, cfg: start_pyrad(out, "async"),
}
