"""`conecta nas add|set|list|show|remove`: access points and gateways allowed to talk RADIUS."""

from __future__ import annotations

from datetime import timezone

import click
from sqlalchemy import select

from portal.cli import output
from portal.core import probes, sites
from portal.core.coa import takes_coa
from portal.core.db import commit_or_explain
from portal.core.errors import InputError
from portal.core.model import OCTETS_DIRECTIONS, VENDORS, Nas, Site

DIRECTION_HELP = ("what its Acct-Input-Octets count: input-is-upload (RFC 2866: from the client) or "
                  "input-is-download (CoovaChilli without HS_SWAPOCTETS); default: the vendor's own")
IDENTIFIER_HELP = "the NAS-Identifier it calls itself (CoovaChilli: HS_NASID, sent as nasid in its redirects)"
FAS_LEVEL_HELP = ("openNDS: its fas_secure_enabled, 1, 2 (AES) or 3 (https, authmon); 0 (token in clear) "
                  "only for a test, refused in production")
FASKEY_HELP = "openNDS: its faskey (8 to 32 letters and digits); also signs its BinAuth usage reports"
OCTETS_WORDS = {"input-is-upload": "Acct-Input-Octets is what the client uploads, as RFC 2866 says",
                "input-is-download": "Acct-Input-Octets is what the client downloads, as CoovaChilli counts"}


def coa_words(vendor: str, port: int, short: bool = False) -> str:
    """Where RFC 5176 requests go, in words (`short`: for a table cell)."""
    if takes_coa(vendor, port):
        return str(port) if short else f"Disconnect- and CoA-Requests to port {port}"
    if short:
        return "none"
    return "takes no Disconnect- or CoA-Requests" + (f" ({vendor} never does)" if port else "")


def probe_words(probe: str, ip: str) -> str:
    """How the monitor checks the NAS, in words."""
    try:
        spec = probes.parse_probe(probe, ip)
    except InputError:
        return "not a probe the monitor understands"
    return {"icmp": f"ICMP echo to {ip}", "tcp": f"a TCP connection to {ip} port {spec.port}",
            "http": f"an HTTP request for {spec.url}", "none": "not probed"}[spec.kind]


LOGIN_HOSTS_HELP = ("hosts of its login page besides its IP, comma-separated (e.g. CoovaChilli's uamip 10.1.0.1 "
                    "without a uam secret, MikroTik's hotspot address): the only ones a portal hand-off may go to")


@click.group()
def nas() -> None:
    """Access points and gateways allowed to talk RADIUS."""


@nas.command("add")
@click.argument("name")
@click.option("--site", required=True)
@click.option("--ip", required=True)
@click.option("--secret", help="RADIUS shared secret, at least 16 characters (not for openNDS, which has no RADIUS)")
@click.option("--vendor", required=True, type=click.Choice(VENDORS))
@click.option("--coa-port", default=3799, show_default=True, type=int,
              help="RFC 5176 port for Disconnect- and CoA-Requests; 0 when the NAS takes none")
@click.option("--uam-secret", help="CoovaChilli's uamsecret (md check and CHAP hand-off)")
@click.option("--require-message-authenticator", "require_ma", default="yes", show_default=True,
              type=click.Choice(["yes", "no"]))
@click.option("--nas-identifier", help=IDENTIFIER_HELP)
@click.option("--octets-direction", type=click.Choice(OCTETS_DIRECTIONS), help=DIRECTION_HELP)
@click.option("--probe", default="icmp", show_default=True, help=probes.PROBE_HELP)
@click.option("--login-hosts", help=LOGIN_HOSTS_HELP)
@click.option("--fas-level", type=click.IntRange(0, 3), help=FAS_LEVEL_HELP)
@click.option("--faskey", help=FASKEY_HELP)
@click.pass_obj
def add(c, name, site, ip, secret, vendor, coa_port, uam_secret, require_ma, nas_identifier,  # noqa: ANN001
        octets_direction, probe, login_hosts, fas_level, faskey) -> None:
    """Add a NAS."""
    spec = sites.NasSpec(name, site, ip, secret, vendor, coa_port, uam_secret, require_ma == "yes",
                         nas_identifier, octets_direction, login_hosts, fas_level, faskey)
    with c.db() as db:
        row, warnings = sites.add_nas(db, spec, c.settings.production)
        probes.set_probe(db, name, probe)
        commit_or_explain(db)
        direction = row.octets_direction
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    fas = f", FAS level {fas_level}" if vendor == "opennds" else ""
    click.echo(f"NAS {name!r} added for {row.ip} ({vendor}, site {site!r}, octets {direction}{fas})")


@nas.command("set")
@click.argument("name")
@click.option("--nas-identifier", help=IDENTIFIER_HELP + "; '' removes it")
@click.option("--octets-direction", type=click.Choice(OCTETS_DIRECTIONS), help=DIRECTION_HELP)
@click.option("--coa-port", type=int,
              help="RFC 5176 port for Disconnect- and CoA-Requests; 0 when the NAS takes none")
@click.option("--probe", help=probes.PROBE_HELP)
@click.option("--uam-secret", help="the captive portal's shared secret (CoovaChilli's HS_UAMSECRET); '' removes it")
@click.option("--require-message-authenticator", "require_ma", type=click.Choice(["yes", "no"]))
@click.option("--login-hosts", help=LOGIN_HOSTS_HELP + "; '' removes them")
@click.option("--fas-level", type=click.IntRange(0, 3), help=FAS_LEVEL_HELP)
@click.option("--faskey", help=FASKEY_HELP)
@click.pass_obj
def set_(c, name: str, nas_identifier: str | None, octets_direction: str | None,  # noqa: ANN001
         coa_port: int | None, probe: str | None, uam_secret: str | None, require_ma: str | None,
         login_hosts: str | None, fas_level: int | None, faskey: str | None) -> None:
    """Change a NAS (what is not given stays)."""
    change = sites.NasChange(nas_identifier, octets_direction, coa_port, probe, uam_secret,
                             None if require_ma is None else require_ma == "yes", login_hosts, fas_level, faskey)
    with c.db() as db:
        changed = sites.update_nas(db, name, change, c.settings.production)
        commit_or_explain(db)
    click.echo(f"NAS {name!r}: {', '.join(changed) or 'nothing'} changed")


@nas.command("list")
@click.pass_obj
def list_(c) -> None:  # noqa: ANN001
    """List NAS (secrets are never shown)."""
    with c.db() as db:
        rows = db.execute(select(Nas.name, Site.name, Nas.ip, Nas.vendor, Nas.nas_identifier,
                                 Nas.octets_direction, Nas.coa_port, Nas.probe, Nas.require_message_authenticator,
                                 Nas.last_seen)
                          .join(Site, Site.id == Nas.site_id).order_by(Nas.name)).all()
    tz = c.settings.tz
    rows = [(*r[:6], coa_words(r.vendor, r.coa_port, short=True), *r[7:9],
             r.last_seen.replace(tzinfo=timezone.utc).astimezone(tz).isoformat(timespec="seconds")
             if r.last_seen else None) for r in rows]
    output.table(rows, ("name", "site", "ip", "vendor", "nas_identifier", "octets", "coa_port", "probe",
                        "require_ma", f"last_seen ({c.settings.timezone})"))


@nas.command("show")
@click.argument("name")
@click.pass_obj
def show(c, name: str) -> None:  # noqa: ANN001
    """Show one NAS (secrets hidden)."""
    with c.db() as db:
        row = output.get(db, Nas, Nas.name, name, "NAS")
        output.show(row, hidden=("secret", "uam_secret", "faskey"), words={
            "octets_direction": OCTETS_WORDS.get(row.octets_direction, ""),
            "coa_port": coa_words(row.vendor, row.coa_port),
            "probe": probe_words(row.probe, row.ip)})


output.remove_command(nas, "NAS", sites.remove_nas)


def register(main: click.Group) -> None:
    """Add `conecta nas`."""
    main.add_command(nas)
