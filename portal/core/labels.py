"""Words for the language-neutral codes that are stored (gender, age band, kind of site, fault kind and
status): machines read the codes, people read these (Spanish msgids, English in the catalog)."""

from __future__ import annotations

from policies.messages import N_, gettext
from policies.units import human_duration, human_size

WORDS: dict[str, dict[str, str]] = {
    "gender": {"female": N_("Mujer"), "male": N_("Hombre"), "nonbinary": N_("No binario"),
               "undisclosed": N_("Prefiere no decir")},
    "age_band": {"0-17": N_("Menos de 18 años"), "18-29": N_("18 a 29 años"), "30-44": N_("30 a 44 años"),
                 "45-59": N_("45 a 59 años"), "60+": N_("60 años o más"), "undisclosed": N_("Prefiere no decir")},
    "site_kind": {"park": N_("Parque"), "plaza": N_("Plaza"), "ejido": N_("Ejido"),
                  "digital-center": N_("Centro digital")},
    "fault_kind": {"no-signal": N_("No hay señal"), "slow": N_("Está muy lento"),
                   "cannot-login": N_("No puedo conectarme"), "damaged": N_("Equipo dañado"),
                   "other": N_("Otra cosa")},
    "fault_status": {"new": N_("Nueva"), "in-progress": N_("En atención"), "resolved": N_("Resuelta")},
    "row": {"cell": N_("Celda"), "other": N_("Celdas ocultas, juntas"), "total": N_("Total")},
    "community": {"": N_("Sin comunidad registrada")},
    "vendor": {"coova": "CoovaChilli", "opennds": "openNDS", "mikrotik": "MikroTik", "pfsense": "pfSense / OPNsense",
               "unifi": "UniFi", "generic": N_("Genérico (RFC 2865)")},
    "outcome": {"ok": N_("hecho"), "sent": N_("enviada"), "refused": N_("rechazado"), "locked": N_("bloqueado"),
                "forbidden": N_("sin permiso")},
    "answer": {"pending": N_("esperando respuesta"), "ack": N_("confirmada por el punto de acceso"),
               "nak": N_("rechazada por el punto de acceso"), "timeout": N_("sin respuesta del punto de acceso"),
               "no-coa": N_("el punto de acceso no acepta estas peticiones")},
    "state": {"up": N_("en servicio"), "failing": N_("sin respuesta"), "down": N_("caído"),
              "unprobed": N_("sin sondeo"), "pending": N_("esperando el primer sondeo")},
}

# The report columns as people read them (the codes stay the JSON keys and the CLI's --by names).
COLUMNS: dict[str, str] = {
    "site": N_("Sitio"), "site_kind": N_("Tipo de sitio"), "gender": N_("Género"), "age_band": N_("Edad"),
    "community": N_("Comunidad o colonia"), "day": N_("Día"), "month": N_("Mes"),
    "users": N_("Personas"), "sessions": N_("Sesiones"), "seconds": N_("Segundos"), "hours": N_("Horas"),
    "bytes_down": N_("Bytes de bajada"), "bytes_up": N_("Bytes de subida"), "gb_down": N_("GB de bajada"),
    "gb_up": N_("GB de subida"), "bytes": N_("Bytes a velocidad reducida"), "gb": N_("GB a velocidad reducida"),
    "suppressed": N_("Oculta (menos de k personas)"), "row": N_("Fila"),
    "women": N_("Mujeres"), "rest": N_("Resto de las personas"), "share": N_("Mujeres (%)"),
    "nas": N_("Punto de acceso"), "state": N_("Estado"), "since": N_("Desde"), "last_probe": N_("Último sondeo"),
    "latency_ms": N_("Ida y vuelta (ms)"), "probe": N_("Sondeo"), "detail": N_("Detalle"),
    "last_radius_packet": N_("Último paquete RADIUS"), "sessions_now": N_("Sesiones ahora"),
    "open_faults": N_("Fallas abiertas"), "availability": N_("Disponibilidad (%)"),
    "up_seconds": N_("Segundos en servicio"), "down_seconds": N_("Segundos caído"),
    "downtime_minutes": N_("Minutos caído"), "outages": N_("Caídas"),
}


def word(kind: str, code: object, language: str = "es") -> str:
    """The word for `code` of `kind` in `language`; a value without a word (a site's name) as it is."""
    if code is None:
        code = ""
    said = WORDS.get(kind, {}).get(str(code))
    return gettext(said, language) if said else str(code)


def column(name: str, language: str = "es") -> str:
    """The heading of a report column in `language`."""
    return gettext(COLUMNS[name], language) if name in COLUMNS else name


LIMIT_WORDS = {"daily_time": N_("%(v)s al día"), "daily_data": N_("%(v)s al día"),
               "monthly_time": N_("%(v)s al mes"), "monthly_data": N_("%(v)s al mes"),
               "session_time": N_("sesiones de hasta %(v)s"), "idle_timeout": N_("se cierra tras %(v)s sin uso"),
               "devices": N_("hasta %(v)s dispositivos a la vez")}
POOL_WORDS = {"daily_data": N_("los datos del día"), "monthly_data": N_("los datos del mes")}


def limit_summary(limits: object, language: str = "es") -> str:
    """A policy's limits in words: '2 horas al día, 1 GB al día, …' ('sin límites' when none)."""
    parts = []
    for name, template in LIMIT_WORDS.items():
        value = getattr(limits, name, None)
        if not value:
            continue
        said = (human_duration(value, language) if name.endswith(("_time", "timeout"))
                else human_size(value) if name.endswith("_data") else str(value))
        parts.append(gettext(template, language) % {"v": said})
    return ", ".join(parts) or gettext(N_("sin límites"), language)


def pools(names: object, language: str = "es") -> str:
    """The data pools a slow lane applies to, in words."""
    return gettext(N_(" y "), language).join(gettext(POOL_WORDS.get(n, n), language) for n in names)
