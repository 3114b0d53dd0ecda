"""The city's identity, set once and kept in the database: names, the SSID citizens look for, a contact,
the privacy notice's fields (LFPDPPP) and a small logo. Changing what the notice says publishes a new
version of it, and returning citizens consent again to that version.

Texts are Spanish msgids (policies.messages translates them): the CLI prints them, the console shows them
in the staff member's language.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from policies.messages import N_
from portal.core.errors import InputError
from portal.core.model import CityLogo, CitySetting, PrivacyNotice

# The version every person registered before the city published its own notice accepted.
FIRST_NOTICE_VERSION = "2026-11"
LOGO_MAX_BYTES = 200 * 1024          # what may be uploaded
LOGO_MAX_SIDE = 256                  # what is stored and served: a header logo, light on a 2G link
LOGO_MAX_PIXELS = 4096 * 4096        # refused before decoding: a small file may claim a huge image
LOGO_FORMATS = ("PNG", "JPEG", "GIF", "WEBP")


class IdentityError(InputError):
    """A value that cannot be stored: a Spanish msgid with its parameters (str() is the Spanish text)."""

    def __init__(self, msgid: str, **params: object) -> None:
        super().__init__(msgid, **params)
        self.msgid = msgid


@dataclass(frozen=True)
class Field:
    """One key of the identity: its longest value and whether the privacy notice shows it."""

    key: str
    label: str
    longest: int
    in_notice: bool = False


FIELDS = (
    Field("municipality", N_("Municipio"), 120, in_notice=True),
    Field("program", N_("Nombre del programa"), 80),
    Field("ssid", N_("Nombre de la red Wi-Fi (SSID)"), 32),
    Field("contact", N_("Contacto para la ciudadanía"), 200),
    Field("privacy_responsible", N_("Responsable de los datos personales"), 200, in_notice=True),
    Field("privacy_address", N_("Domicilio del responsable"), 300, in_notice=True),
    Field("privacy_arco_contact", N_("Contacto para derechos ARCO"), 200, in_notice=True),
    Field("privacy_retention", N_("Plazo de conservación de los datos"), 200, in_notice=True),
)
BY_KEY = {f.key: f for f in FIELDS}


@dataclass(frozen=True)
class Identity:
    """What citizens read about who runs the service; empty strings where nothing is set."""

    municipality: str = ""
    program: str = "Conecta"
    ssid: str = "Conecta"
    contact: str = ""
    privacy_responsible: str = ""
    privacy_address: str = ""
    privacy_arco_contact: str = ""
    privacy_retention: str = ""
    notice_version: str = FIRST_NOTICE_VERSION
    logo: str | None = None          # the logo's digest, when there is one

    def notice_fields(self) -> dict[str, str]:
        """The values the privacy notice shows."""
        return {f.key: getattr(self, f.key) for f in FIELDS if f.in_notice}

    def missing_in_notice(self) -> list[str]:
        """The notice's keys still empty (the law asks for each)."""
        return [k for k, v in self.notice_fields().items() if not v]


def clean(key: str, value: str) -> str:
    """The value to store for `key`, stripped; IdentityError when the key is unknown or the value is not
    plain text of the allowed length (no markup, no control characters)."""
    spec = BY_KEY.get(key)
    if spec is None:
        raise IdentityError(N_("«%(key)s» no es un dato de la identidad; los datos son: %(keys)s."),
                            key=key[:40], keys=", ".join(BY_KEY))
    value = value.strip()
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        raise IdentityError(N_("%(field)s: no se admiten caracteres de control ni saltos de línea."),
                            field=spec.label)
    if any(c in value for c in "<>"):
        raise IdentityError(N_("%(field)s: escribe texto sin marcas HTML (sin «<» ni «>»)."), field=spec.label)
    size = len(value.encode()) if key == "ssid" else len(value)
    if size > spec.longest:
        unit = N_("bytes") if key == "ssid" else N_("caracteres")
        raise IdentityError(N_("%(field)s: como máximo %(n)d %(unit)s."), field=spec.label, n=spec.longest,
                            unit=unit)
    if key in ("program", "ssid") and not value:
        raise IdentityError(N_("%(field)s no puede quedar vacío."), field=spec.label)
    return value


def load(db: DbSession) -> Identity:
    """The identity as stored (defaults where nothing is set)."""
    stored = {k: v for k, v in db.execute(select(CitySetting.key, CitySetting.value)) if k in BY_KEY}
    version = db.scalar(select(PrivacyNotice.version).order_by(PrivacyNotice.published_at.desc(),
                                                               PrivacyNotice.version.desc()).limit(1))
    digest = db.scalar(select(CityLogo.digest).where(CityLogo.id == 1))
    return Identity(**stored, notice_version=version or FIRST_NOTICE_VERSION, logo=digest)


def update(db: DbSession, changes: dict[str, str], now: datetime) -> list[str]:
    """Store the changed values (each checked first: all or nothing) and publish a new notice version when
    what the notice says changed; the keys that changed. `now` is aware local time (the version's date is
    the city's). The caller commits."""
    cleaned = {key: clean(key, value) for key, value in changes.items()}
    before = load(db)
    changed = [k for k, v in cleaned.items() if getattr(before, k) != v]
    stamp = _utc(now)
    for key in changed:
        row = db.get(CitySetting, key)
        if row is None:
            db.add(CitySetting(key=key, value=cleaned[key], updated_at=stamp))
        else:
            row.value, row.updated_at = cleaned[key], stamp
    if any(BY_KEY[k].in_notice for k in changed):
        after = {**before.notice_fields(), **{k: cleaned[k] for k in changed if BY_KEY[k].in_notice}}
        db.add(PrivacyNotice(version=_next_version(db, now), published_at=stamp,
                             fields=json.dumps(after, ensure_ascii=False, sort_keys=True)))
    db.flush()
    return changed


def _utc(now: datetime) -> datetime:
    """Stored times are naive UTC, as everywhere in the schema."""
    return now.astimezone(timezone.utc).replace(tzinfo=None)


def _next_version(db: DbSession, now: datetime) -> str:
    """'2026-12-02', then '2026-12-02.2', … for more versions the same day."""
    day = now.strftime("%Y-%m-%d")
    taken = set(db.scalars(select(PrivacyNotice.version).where(PrivacyNotice.version.like(day + "%"))))
    if day not in taken:
        return day
    n = 2
    while f"{day}.{n}" in taken:
        n += 1
    return f"{day}.{n}"


def notice(db: DbSession, version: str) -> dict[str, str] | None:
    """The fields of a published notice version (None for the first, built-in one or an unknown one)."""
    row = db.get(PrivacyNotice, version)
    return json.loads(row.fields) if row else None


def set_logo(db: DbSession, data: bytes, now: datetime) -> CityLogo:
    """Check an uploaded image and store it re-encoded as a PNG of at most LOGO_MAX_SIDE pixels a side
    (no metadata, nothing of the upload but its pixels); IdentityError when it is not a small image."""
    if not data:
        raise IdentityError(N_("El logotipo está vacío."))
    if len(data) > LOGO_MAX_BYTES:
        raise IdentityError(N_("El logotipo pesa más de %(kb)d KB."), kb=LOGO_MAX_BYTES // 1024)
    png, width, height = _reencode(data)
    row = db.get(CityLogo, 1) or CityLogo(id=1)
    row.data, row.digest, row.width, row.height = png, hashlib.sha256(png).hexdigest(), width, height
    row.updated_at = _utc(now)
    db.add(row)
    db.flush()
    return row


def _reencode(data: bytes) -> tuple[bytes, int, int]:
    from PIL import Image, UnidentifiedImageError  # only the logo needs Pillow: RADIUS never loads it

    refusal = IdentityError(N_("El logotipo debe ser una imagen PNG, JPEG, GIF o WebP."))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=LOGO_FORMATS) as probe:
                if probe.width * probe.height > LOGO_MAX_PIXELS:
                    raise IdentityError(N_("El logotipo es demasiado grande: como máximo %(n)d × %(n)d píxeles."),
                                        n=4096)
                probe.verify()
            with Image.open(io.BytesIO(data), formats=LOGO_FORMATS) as image:
                image.seek(0)
                picture = image.convert("RGBA")
    except IdentityError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning, EOFError):
        raise refusal from None
    picture.thumbnail((LOGO_MAX_SIDE, LOGO_MAX_SIDE))
    out = io.BytesIO()
    picture.save(out, format="PNG", optimize=True)
    return out.getvalue(), picture.width, picture.height


def remove_logo(db: DbSession) -> bool:
    """Remove the logo; False when there was none. The caller commits."""
    row = db.get(CityLogo, 1)
    if row is not None:
        db.delete(row)
    return row is not None


def logo(db: DbSession) -> CityLogo | None:
    """The stored logo, if any."""
    return db.get(CityLogo, 1)

