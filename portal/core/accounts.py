"""Accounts created by staff: one at a time or imported from CSV (digital centers, ejido households)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from policies import Policy
from policies.messages import N_
from portal.core.credentials import is_one_time
from portal.core.errors import InputError, printable
from portal.core.macs import normalize_mac
from portal.core.model import AGE_BANDS, GENDERS, Session, User

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")


def validate_user(fields: dict[str, str | None], policies: dict[str, Policy]) -> dict:
    """Check one account's fields (as from the CLI or a CSV line); raise InputError naming the column."""
    username = (fields.get("username") or "").strip()
    if not USERNAME.fullmatch(username):
        raise InputError(N_("username: de 1 a 64 letras, dígitos o . _ @ + -, empezando con letra o dígito"))
    if is_one_time(username) or normalize_mac(username):
        raise InputError(N_("username: parece una credencial de un solo uso o una dirección MAC; elige otro"))
    password = fields.get("password") or ""
    if not 4 <= len(password) <= 128 or not printable(password):
        raise InputError(N_("password: de 4 a 128 caracteres imprimibles"))
    policy = (fields.get("policy") or "").strip() or None
    if policy is not None and policy not in policies:
        raise InputError(N_("policy: no existe la política %(policy)r (cargadas: %(known)s)"), policy=policy[:80],
                         known=", ".join(sorted(policies)))
    gender = (fields.get("gender") or "undisclosed").strip()
    if gender not in GENDERS:
        raise InputError(N_("gender: %(value)r no es uno de %(known)s"), value=gender[:80], known=" | ".join(GENDERS))
    age_band = (fields.get("age_band") or "undisclosed").strip()
    if age_band not in AGE_BANDS:
        raise InputError(N_("age_band: %(value)r no es uno de %(known)s"), value=age_band[:80],
                         known=" | ".join(AGE_BANDS))
    community = (fields.get("community") or "").strip() or None
    if community is not None and (len(community) > 80 or not printable(community)):
        raise InputError(N_("community: como mucho 80 caracteres imprimibles"))
    return {"username": username, "password": password, "policy": policy, "gender": gender,
            "age_band": age_band, "community": community}



def add_user(db: DbSession, policies: dict[str, Policy], fields: dict, source: str = "staff") -> User:
    """Create one account; the caller commits."""
    values = validate_user(fields, policies)
    if db.scalar(select(User.id).where(User.username == values["username"])):
        raise InputError(N_("el usuario %(name)r ya existe"), name=values["username"])
    user = User(**values, source=source)
    db.add(user)
    db.flush()
    return user



CSV_COLUMNS = ("username", "password", "policy", "gender", "age_band", "community")


def read_user_csv(text: str, policies: dict[str, Policy]) -> list[dict]:
    """Parse and validate a whole CSV; InputError names the line and column of the first fault."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if "username" not in header or "password" not in header:
        raise InputError(N_("línea 1: el encabezado debe nombrar al menos username y password"))
    if unknown:
        raise InputError(N_("línea 1, columna %(column)r: columna desconocida (se conocen: %(known)s)"),
                         column=unknown[0][:80], known=", ".join(CSV_COLUMNS))
    repeated = [h for h in header if header.count(h) > 1]
    if repeated:
        raise InputError(N_("línea 1, columna %(column)r: aparece dos veces en el encabezado"), column=repeated[0][:80])
    reader.fieldnames = header
    try:
        return _read_rows(reader, policies)
    except csv.Error as exc:
        raise InputError(N_("línea %(line)s: no es CSV válido (%(problem)s)"), line=reader.line_num + 1,
                         problem=str(exc)[:120]) from None


def _read_rows(reader: csv.DictReader, policies: dict[str, Policy]) -> list[dict]:
    rows, seen = [], {}
    for row in reader:
        line = reader.line_num
        if None in row:
            raise InputError(N_("línea %(line)s: más campos que los del encabezado"), line=line)
        try:
            values = validate_user(row, policies)
        except InputError as exc:
            raise InputError(N_("línea %(line)s, columna %(problem)s"), line=line, problem=exc) from None
        if values["username"] in seen:
            first = seen[values["username"]]
            raise InputError(N_("línea %(line)s, columna username: %(name)r repite la línea %(first)s"), line=line,
                             name=values["username"], first=first)
        seen[values["username"]] = line
        rows.append({**values, "line": line})
    if not rows:
        raise InputError(N_("el archivo tiene encabezado pero ninguna cuenta"))
    return rows


def import_users(db: DbSession, rows: list[dict], progress: Callable[[int], None] = lambda n: None,
                 chunk: int = 1000) -> int:
    """Insert validated rows in one transaction (the caller commits or rolls back); all or nothing."""
    line_of = {r["username"]: r.get("line") for r in rows}
    names = list(line_of)
    for start in range(0, len(names), chunk):
        taken = db.scalars(select(User.username).where(User.username.in_(names[start:start + chunk]))).first()
        if taken:
            raise InputError(N_("línea %(line)s, columna username: el usuario %(name)r ya existe"),
                             line=line_of[taken], name=taken)
    columns = {c.name for c in User.__table__.columns}
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        db.execute(User.__table__.insert(), [{**{k: v for k, v in r.items() if k in columns}, "source": "import",
                                              "disabled": False} for r in part])
        progress(len(part))
    return len(rows)



def remove_user(db: DbSession, username: str) -> None:
    """Remove an account; its sessions stay, without the name, for the figures. The caller commits."""
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise InputError(N_("no existe el usuario %(name)r"), name=username[:80])
    db.execute(Session.__table__.update().where(Session.user_id == user.id).values(username="-"))
    db.delete(user)
