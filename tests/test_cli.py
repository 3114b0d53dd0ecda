"""The installed `conecta` command, run as a real subprocess against the test database
(SQLite copy, or PostgreSQL when CONECTA_TEST_DATABASE_URL is set) and the test Redis.

Every check looks at the exit status, what an operator reads, and the rows left in the database.
Independent commands that change nothing run side by side to keep the suite quick."""

from __future__ import annotations

import os
import pty
import shutil
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text

from portal.core import accounts, sites, staffauth

CONECTA = Path(sys.executable).with_name("conecta")
if not CONECTA.exists():  # pragma: no cover - a venv without the console script
    CONECTA = Path(shutil.which("conecta") or "conecta")

GOOD_SECRET = "7f3a9c2e5b8d1f4a6c0e"          # 20 characters, not a known default
PROD_KEY = "k" * 40


@dataclass
class Result:
    code: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"


class Cli:
    """Runs `conecta` with a clean CONECTA_* environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def _env(self, extra: dict[str, str] | None) -> dict[str, str]:
        return {**self.env, **(extra or {})}

    def popen(self, args: tuple[str, ...], extra: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen([str(CONECTA), *args], env=self._env(extra), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def finish(proc: subprocess.Popen) -> Result:
        out, err = proc.communicate(timeout=120)
        return Result(proc.returncode, out, err)

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return self.finish(self.popen(args, env))

    def many(self, *commands: tuple[str, ...], env: dict[str, str] | None = None) -> list[Result]:
        """Run commands that do not depend on each other at the same time."""
        return [self.finish(proc) for proc in [self.popen(args, env) for args in commands]]

    def with_tty_stderr(self, *args: str) -> Result:
        """Run with stderr on a pseudo-terminal, as when an operator runs it by hand."""
        master, slave = pty.openpty()
        proc = subprocess.Popen([str(CONECTA), *args], env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=slave, text=True)
        os.close(slave)
        chunks: list[bytes] = []

        def drain() -> None:
            while True:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO once the child has closed the terminal
                    return
                if not data:
                    return
                chunks.append(data)

        reader = threading.Thread(target=drain)
        reader.start()
        out, _ = proc.communicate(timeout=120)
        reader.join(10)
        os.close(master)
        return Result(proc.returncode, out, b"".join(chunks).decode("utf-8", "replace"))


def base_env(data_dir: Path, database_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONECTA_")}
    env.update(CONECTA_DATA_DIR=str(data_dir), CONECTA_DATABASE_URL=database_url, CONECTA_REDIS_URL=redis_url)
    return env


@pytest.fixture()
def cli(tmp_path: Path, database_url: str, redis_url: str) -> Cli:
    return Cli(base_env(tmp_path / "instance", database_url, redis_url))


def assert_error(result: Result, *fragments: str, after_progress: bool = False) -> str:
    """Exit status 1, one human line starting with 'Error:', no traceback; return that line."""
    assert result.code == 1, result
    assert "Traceback" not in result.err, result
    lines = result.err.strip().splitlines()
    if after_progress:  # the import's progress label may come first
        lines = [line for line in lines if line.strip() != "importing"]
    assert len(lines) == 1, result
    line = lines[0]
    assert line.startswith("Error: "), result
    for fragment in fragments:
        assert fragment in line, result
    return line


def rows(db_factory, sql: str, **params) -> list[tuple]:
    with db_factory() as db:
        return [tuple(r) for r in db.execute(text(sql), params).all()]


def count(db_factory, table: str) -> int:
    return rows(db_factory, f"SELECT count(*) FROM {table}")[0][0]  # noqa: S608 - fixed table names


def add_site(db_factory, policies, name: str = "Parque Hidalgo", policy: str = "parque") -> None:
    with db_factory() as db:
        sites.add_site(db, policies, name, "park", policy)
        db.commit()


def write_csv(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


# --- init -------------------------------------------------------------------------------------------------


@pytest.mark.skipif(bool(os.environ.get("CONECTA_TEST_DATABASE_URL")),
                    reason="runs on its own SQLite file: once, in the SQLite pass")
def test_init_creates_the_schema_in_an_empty_data_dir(tmp_path, redis_url):
    data = tmp_path / "fresh"
    db_path = data / "conecta.db"
    cli = Cli(base_env(data, f"sqlite:///{db_path}", redis_url))

    first = cli("init")
    assert first.code == 0, first
    assert "centro-digital, demo, ejido, parque, personal" in first.out
    assert "database ready" in first.out
    with sqlite3.connect(db_path) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert len(con.execute("SELECT version_num FROM alembic_version").fetchall()) == 1
    assert {"sites", "nas", "users", "staff", "sessions", "usage_daily", "alembic_version"} <= tables

    assert (data / "secret_key").exists()  # the development secret lives in the data dir


def test_init_demo_prints_the_nas_secret_and_is_idempotent(cli, db_factory):
    # the database is already migrated here: init only has to find the schema up to date
    first = cli("init", "--demo")
    assert first.code == 0, first
    secret = first.out.strip().splitlines()[-1].rsplit("secret: ", 1)[1]
    assert len(secret) >= 16
    assert "demo-ap" in first.out and "127.0.0.1" in first.out

    second = cli("init", "--demo")
    assert second.code == 0, second
    assert second.out.strip().splitlines()[-1].endswith(f"secret: {secret}")

    assert rows(db_factory, "SELECT name, kind, policy FROM sites") == [("Parque Demo", "park", "demo")]
    assert rows(db_factory, "SELECT n.name, n.ip, n.secret, s.name FROM nas n JOIN sites s ON s.id = n.site_id") \
        == [("demo-ap", "127.0.0.1", secret, "Parque Demo")]


def test_init_with_a_bad_policy_dir_exits_1_naming_file_and_key(tmp_path, redis_url):
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    shutil.copy(Path(__file__).resolve().parent.parent / "policies" / "parque.toml", policy_dir)
    (policy_dir / "plaza.toml").write_text('name = "plaza"\n[limits]\ndaily_time = "2 horas"\n')
    db_path = tmp_path / "data" / "conecta.db"
    cli = Cli(base_env(tmp_path / "data", f"sqlite:///{db_path}", redis_url))

    result = cli("init", "--demo", env={"CONECTA_POLICY_DIR": str(policy_dir)})
    assert_error(result, "plaza.toml", "limits.daily_time")
    # policies are checked before the database is touched
    if db_path.exists():
        with sqlite3.connect(db_path) as con:
            assert con.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone() == (0,)


# --- sites and NAS ----------------------------------------------------------------------------------------


def test_site_and_nas_add_list_show_remove(cli, db_factory):
    added = cli("site", "add", "Parque Hidalgo", "--kind", "park", "--policy", "parque",
                "--planned-gb-month", "120", "--lat", "19.43", "--lon", "-99.13")
    assert added.code == 0, added
    assert rows(db_factory, "SELECT name, kind, policy, planned_gb_month, lat, lon FROM sites") == \
        [("Parque Hidalgo", "park", "parque", 120.0, 19.43, -99.13)]

    nas = cli("nas", "add", "ap-kiosco", "--site", "Parque Hidalgo", "--ip", "10.20.0.5",
              "--secret", GOOD_SECRET, "--vendor", "mikrotik", "--uam-secret", "uam-" + GOOD_SECRET)
    assert nas.code == 0, nas
    assert "warning" not in nas.err  # a good secret draws no warning
    assert rows(db_factory, "SELECT n.name, n.ip, n.secret, n.vendor, n.coa_port, s.name "
                            "FROM nas n JOIN sites s ON s.id = n.site_id") == \
        [("ap-kiosco", "10.20.0.5", GOOD_SECRET, "mikrotik", 3799, "Parque Hidalgo")]

    (dup_site, bad_policy, bad_site, bad_ip, dup_nas, busy_site,
     nas_show, nas_list, site_list, site_show) = cli.many(
        ("site", "add", "Parque Hidalgo", "--kind", "plaza", "--policy", "parque"),
        ("site", "add", "Plaza Norte", "--kind", "plaza", "--policy", "parques"),
        ("nas", "add", "ap-2", "--site", "Parque Juarez", "--ip", "10.20.0.6", "--secret", GOOD_SECRET,
         "--vendor", "coova"),
        ("nas", "add", "ap-2", "--site", "Parque Hidalgo", "--ip", "10.20.0.300", "--secret", GOOD_SECRET,
         "--vendor", "coova"),
        ("nas", "add", "ap-kiosco", "--site", "Parque Hidalgo", "--ip", "10.20.0.7", "--secret", GOOD_SECRET,
         "--vendor", "coova"),
        ("site", "remove", "Parque Hidalgo"),
        ("nas", "show", "ap-kiosco"),
        ("nas", "list"),
        ("site", "list"),
        ("site", "show", "Parque Hidalgo"),
    )
    assert_error(dup_site, "Parque Hidalgo", "ya existe")
    assert_error(bad_policy, "no existe la política", "parques")
    assert_error(bad_site, "no existe el sitio", "Parque Juarez")
    assert_error(bad_ip, "10.20.0.300", "no es una dirección IP")
    assert_error(dup_nas, "ap-kiosco", "ya existe")
    assert_error(busy_site, "Parque Hidalgo", "1 NAS")

    assert nas_show.code == 0, nas_show
    assert "ip: 10.20.0.5" in nas_show.out and "vendor: mikrotik" in nas_show.out
    assert "secret: (hidden)" in nas_show.out
    assert GOOD_SECRET not in nas_show.out + nas_show.err      # neither secret is ever shown
    assert nas_list.code == 0 and "ap-kiosco" in nas_list.out and "10.20.0.5" in nas_list.out
    assert GOOD_SECRET not in nas_list.out + nas_list.err
    assert site_list.out.splitlines()[1].split() == ["Parque", "Hidalgo", "park", "parque", "120.0", "1"]
    assert "policy: parque" in site_show.out and "lat: 19.43" in site_show.out

    # nothing above changed the database
    assert rows(db_factory, "SELECT name FROM sites") == [("Parque Hidalgo",)]
    assert rows(db_factory, "SELECT name FROM nas") == [("ap-kiosco",)]

    changed = cli("site", "set", "Parque Hidalgo", "--policy", "ejido", "--community", "Centro",
                  "--community", "Playa Norte")
    assert changed.code == 0 and "policy, communities changed" in changed.out, changed
    assert_error(cli("site", "set", "Parque Hidalgo", "--lat", "91"), "latitud")
    assert rows(db_factory, "SELECT policy, communities, lat FROM sites") == [("ejido", "Centro\nPlaya Norte", 19.43)]

    gone_nas = cli("nas", "remove", "ap-kiosco")
    assert gone_nas.code == 0, gone_nas
    assert count(db_factory, "nas") == 0
    gone_site = cli("site", "remove", "Parque Hidalgo")
    assert gone_site.code == 0, gone_site
    assert count(db_factory, "sites") == 0


def test_nas_identifier_and_octets_direction(cli, db_factory, policies):
    add_site(db_factory, policies)

    def nas(name: str, ip: str, vendor: str, *extra: str) -> tuple[str, ...]:
        return ("nas", "add", name, "--site", "Parque Hidalgo", "--ip", ip, "--secret", GOOD_SECRET, "--vendor",
                vendor, *extra)
    chilli = cli(*nas("ap-chilli", "10.20.0.5", "coova", "--nas-identifier", "nas01"))
    routerboard = cli(*nas("ap-rb", "10.20.0.6", "mikrotik"))
    assert chilli.code == 0 and "octets input-is-download" in chilli.out, chilli    # chilli's own default
    assert routerboard.code == 0 and "octets input-is-upload" in routerboard.out, routerboard
    taken, names_other, is_other, bad_direction, unknown, show, listing = cli.many(
        nas("ap-3", "10.20.0.7", "coova", "--nas-identifier", "nas01"),
        ("nas", "set", "ap-rb", "--nas-identifier", "ap-chilli"),
        nas("nas01", "10.20.0.8", "coova"),
        ("nas", "set", "ap-rb", "--octets-direction", "sideways"),
        ("nas", "set", "ap-nada", "--coa-port", "3799"),
        ("nas", "show", "ap-chilli"),
        ("nas", "list"))
    assert_error(taken, "nas01", "ya nombra al NAS 'ap-chilli'")
    assert_error(names_other, "ap-chilli", "ya nombra al NAS 'ap-chilli'")
    assert_error(is_other, "nas01", "el NAS-Identifier de otro NAS")
    assert bad_direction.code == 2 and "input-is-upload" in bad_direction.err
    assert_error(unknown, "no existe el NAS 'ap-nada'")
    assert "nas_identifier: nas01" in show.out and "octets_direction: input-is-download" in show.out
    assert listing.out.splitlines()[0].split()[:6] == ["name", "site", "ip", "vendor", "nas_identifier", "octets"]
    assert "nas01" in listing.out and "input-is-download" in listing.out
    changed = cli("nas", "set", "ap-chilli", "--octets-direction", "input-is-upload", "--nas-identifier", "")
    assert changed.code == 0 and "nas_identifier, octets_direction changed" in changed.out, changed
    assert rows(db_factory, "SELECT name, nas_identifier, octets_direction FROM nas ORDER BY name") == \
        [("ap-chilli", None, "input-is-upload"), ("ap-rb", None, "input-is-upload")]
    no_coa, bad_port = cli.many(("nas", "set", "ap-rb", "--coa-port", "0"),     # 0: it takes no CoA (slow lane)
                                ("nas", "set", "ap-rb", "--coa-port", "70000"))
    assert no_coa.code == 0 and "coa_port changed" in no_coa.out, no_coa
    assert_error(bad_port, "el puerto CoA 70000 no es un número de puerto")
    assert rows(db_factory, "SELECT coa_port FROM nas WHERE name = 'ap-rb'") == [(0,)]
    # One `nas set` for everything (the monitor's probe too), and `nas show` / `nas list` say it in words.
    everything = cli("nas", "set", "ap-chilli", "--nas-identifier", "chilli-2", "--octets-direction",
                     "input-is-download", "--coa-port", "3990", "--probe", "tcp:3990")
    bad_probe = cli("nas", "set", "ap-chilli", "--coa-port", "0", "--probe", "tcp:0")
    assert everything.code == 0 and "nas_identifier, octets_direction, coa_port, probe changed" in everything.out
    assert_error(bad_probe, "sonda tcp: '0' no es un número de puerto")
    assert rows(db_factory, "SELECT nas_identifier, octets_direction, coa_port, probe FROM nas WHERE name = "
                            "'ap-chilli'") == [("chilli-2", "input-is-download", 3990, "tcp:3990")]   # all or nothing
    chilli, rb, listing = cli.many(("nas", "show", "ap-chilli"), ("nas", "show", "ap-rb"), ("nas", "list"))
    assert "coa_port: 3990 (Disconnect- and CoA-Requests to port 3990)" in chilli.out
    assert "probe: tcp:3990 (a TCP connection to 10.20.0.5 port 3990)" in chilli.out
    assert "octets_direction: input-is-download (Acct-Input-Octets is what the client downloads" in chilli.out
    assert "coa_port: 0 (takes no Disconnect- or CoA-Requests)" in rb.out and "probe: icmp (ICMP echo" in rb.out
    assert listing.out.splitlines()[0].split()[6:8] == ["coa_port", "probe"]
    lines = dict(line.split(maxsplit=1) for line in listing.out.splitlines()[1:])
    assert " 3990 " in lines["ap-chilli"] and " none " in lines["ap-rb"] and "tcp:3990" in lines["ap-chilli"]


def test_weak_nas_secrets_are_refused_in_production_and_warned_about_in_development(cli, db_factory, policies):
    add_site(db_factory, policies)
    prod = {"CONECTA_ENV": "production", "CONECTA_SECRET_KEY": PROD_KEY}

    def nas(name: str, ip: str, secret: str) -> tuple[str, ...]:
        return ("nas", "add", name, "--site", "Parque Hidalgo", "--ip", ip, "--vendor", "coova", "--secret", secret)

    procs = [cli.popen(nas("ap-weak-1", "10.0.0.1", "testing123"), prod),
             cli.popen(nas("ap-weak-2", "10.0.0.2", "abcdef012345678"), prod),      # 15 characters
             cli.popen(nas("ap-weak-3", "10.0.0.3", "testing123testing123"), prod),
             cli.popen(nas("ap-good", "10.0.0.4", GOOD_SECRET), prod),
             cli.popen(nas("ap-dev", "10.0.0.5", "testing123"))]                    # development
    default, short, long_default, good, dev = (cli.finish(p) for p in procs)

    assert_error(default, "no se acepta en producción")
    assert "testing123" not in default.err  # the refused secret is not echoed
    assert_error(short, "tiene menos de 16 caracteres", "no se acepta en producción")
    assert_error(long_default, "valor de fábrica muy conocido", "no se acepta en producción")
    assert good.code == 0, good
    assert "warning" not in good.err
    assert dev.code == 0, dev
    assert "warning" in dev.err and "valor de fábrica muy conocido" in dev.err and "menos de 16" in dev.err
    assert "Traceback" not in dev.err
    assert rows(db_factory, "SELECT name, secret FROM nas ORDER BY name") == \
        [("ap-dev", "testing123"), ("ap-good", GOOD_SECRET)]


def test_an_opennds_gateway_needs_its_fas_level_and_faskey(cli, db_factory, policies):
    add_site(db_factory, policies)
    prod = {"CONECTA_ENV": "production", "CONECTA_SECRET_KEY": PROD_KEY}
    key = "Fa5KeyOfTheGateway"

    def nas(name: str, ip: str, *extra: str) -> tuple[str, ...]:
        return ("nas", "add", name, "--site", "Parque Hidalgo", "--ip", ip, "--vendor", "opennds", *extra)

    level0_prod = cli.popen(nas("ap-n3", "10.0.1.3", "--fas-level", "0", "--faskey", key), prod)
    silent, no_key, level0_dev, good, mikrotik = cli.many(
        nas("ap-n1", "10.0.1.1", "--faskey", key),                          # no level: no silent level 0
        nas("ap-n2", "10.0.1.2", "--fas-level", "2"),
        nas("ap-n4", "10.0.1.4", "--fas-level", "0", "--faskey", key),
        nas("ap-n5", "10.0.1.5", "--fas-level", "2", "--faskey", key),    # no --secret: it has no RADIUS
        ("nas", "add", "ap-m", "--site", "Parque Hidalgo", "--ip", "10.0.1.6", "--vendor", "mikrotik",
         "--secret", GOOD_SECRET, "--fas-level", "2", "--faskey", key), env=None)
    assert_error(silent, "--fas-level 1, 2 o 3")
    assert_error(no_key, "--faskey")
    level0_prod = cli.finish(level0_prod)
    assert_error(level0_prod, "nivel FAS 0", "no se acepta en producción")
    assert level0_dev.code == 0 and "warning: el nivel FAS 0" in level0_dev.err, level0_dev
    assert good.code == 0 and "FAS level 2" in good.out and "warning" not in good.err, good
    assert_error(mikrotik, "solo para pasarelas openNDS")
    shown, changed = cli.many(("nas", "show", "ap-n5"), ("nas", "set", "ap-n5", "--fas-level", "3"))
    assert "faskey: (hidden)" in shown.out and key not in shown.out and "fas_level: " in shown.out
    assert changed.code == 0 and "fas_level" in changed.out, changed
    assert rows(db_factory, "SELECT name, fas_level, faskey, length(secret) FROM nas ORDER BY name") == \
        [("ap-n4", 0, key, 32), ("ap-n5", 3, key, 32)]


# --- users ------------------------------------------------------------------------------------------------


def test_user_add_list_show_remove(cli, db_factory):
    added = cli("user", "add", "maria.lopez", "--password", "girasol-77", "--policy", "centro-digital",
                "--gender", "female", "--age-band", "30-44", "--community", "San Isidro")
    assert added.code == 0, added
    assert rows(db_factory, "SELECT username, password, policy, gender, age_band, community, source FROM users") \
        == [("maria.lopez", "girasol-77", "centro-digital", "female", "30-44", "San Isidro", "staff")]

    dup, bad_policy, listed, shown, missing = cli.many(
        ("user", "add", "maria.lopez", "--password", "otra-clave", "--policy", "parque"),
        ("user", "add", "juan", "--password", "girasol-77", "--policy", "biblioteca"),
        ("user", "list"),
        ("user", "show", "maria.lopez"),
        ("user", "show", "juan"),
    )
    assert_error(dup, "maria.lopez", "ya existe")
    assert_error(bad_policy, "no existe la política", "biblioteca")
    assert_error(missing, "no existe el usuario", "juan")
    assert listed.code == 0
    assert listed.out.splitlines()[1].split() == \
        ["maria.lopez", "centro-digital", "female", "30-44", "San", "Isidro", "staff", "False"]
    assert "(1 of 1)" in listed.err
    assert "community: San Isidro" in shown.out
    assert "girasol-77" not in shown.out  # the password is hidden
    assert rows(db_factory, "SELECT username, password FROM users") == [("maria.lopez", "girasol-77")]

    removed = cli("user", "remove", "maria.lopez")
    assert removed.code == 0, removed
    assert count(db_factory, "users") == 0


def test_user_import_of_5000_rows_draws_a_progress_bar(cli, db_factory, tmp_path):
    lines = [f"hogar{i:05d},clave-{i:05d},ejido,female,30-44,El Rosario" for i in range(5000)]
    csv = write_csv(tmp_path / "hogares.csv", "username,password,policy,gender,age_band,community", lines)

    result = cli.with_tty_stderr("user", "import", str(csv))
    assert result.code == 0, result
    assert "5000 users imported" in result.out
    assert "importing" in result.err and "100%" in result.err and "[####" in result.err

    assert count(db_factory, "users") == 5000
    assert rows(db_factory, "SELECT username, password, policy, gender, age_band, community, source FROM users "
                            "WHERE username IN ('hogar00000', 'hogar04999') ORDER BY username") == [
        ("hogar00000", "clave-00000", "ejido", "female", "30-44", "El Rosario", "import"),
        ("hogar04999", "clave-04999", "ejido", "female", "30-44", "El Rosario", "import"),
    ]


def test_user_import_is_all_or_nothing_and_names_line_and_column(cli, db_factory, tmp_path):
    header = "username,password,policy,gender,age_band,community"
    good = [f"alumno{i:04d},clave-{i:04d},centro-digital,male,0-17,Centro" for i in range(1000)]
    bad_500 = good.copy()
    bad_500[498] = "alumno0498,clave-0498,centro-digital,hombre,0-17,Centro"   # file line 500
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("username,password\nnuñez,contraseña\n".encode("latin-1"))
    files = [
        write_csv(tmp_path / "gender500.csv", header, bad_500),
        write_csv(tmp_path / "policy.csv", header, [good[0], "x1,clave-123,biblioteca,,,"]),
        write_csv(tmp_path / "column.csv", "username,password,email", ["ana,clave-123,a@b.mx"]),
        write_csv(tmp_path / "nopassword.csv", "username,policy", ["ana,parque"]),
        write_csv(tmp_path / "repeat.csv", "username,password", ["zoe,clave-123", "yara,clave-123", "zoe,clave-4"]),
        latin1,
        # only username and password are required; the rest take their defaults
        write_csv(tmp_path / "minimal.csv", "username,password", ["ana,clave-123", "bea,clave-456"]),
    ]
    gender500, policy, column, no_password, repeat, not_utf8, minimal = \
        cli.many(*(("user", "import", str(f)) for f in files))
    assert_error(gender500, "línea 500", "columna gender", "hombre")
    assert_error(policy, "línea 3", "columna policy", "biblioteca")
    assert_error(column, "línea 1", "'email'")
    assert_error(no_password, "línea 1", "password")
    assert_error(repeat, "línea 4", "columna username", "repite la línea 2")
    assert_error(not_utf8, "latin1.csv", "UTF-8")
    assert minimal.code == 0, minimal
    assert "2 users imported" in minimal.out
    # the bad files added nobody: not the 498 good lines before line 500, not the first line of the others
    assert rows(db_factory, "SELECT username, password, policy, gender, age_band, community, source FROM users "
                            "ORDER BY username") == [
        ("ana", "clave-123", None, "undisclosed", "undisclosed", None, "import"),
        ("bea", "clave-456", None, "undisclosed", "undisclosed", None, "import"),
    ]

    # a file that repeats an existing account adds nobody, not even the lines before it
    again = write_csv(tmp_path / "again.csv", "username,password", ["carla,clave-123", "dora,clave-123",
                                                                    "bea,clave-789"])
    clash = cli("user", "import", str(again))
    assert_error(clash, "línea 4", "columna username", "'bea'", "ya existe", after_progress=True)
    assert rows(db_factory, "SELECT username, password FROM users ORDER BY username") == \
        [("ana", "clave-123"), ("bea", "clave-456")]


def test_user_import_names_the_right_line_after_a_blank_line(cli, db_factory, tmp_path):
    csv = tmp_path / "blank.csv"
    csv.write_text("username,password\nana,clave-123\n\nbea,clave-456\n", encoding="utf-8")  # bea: line 4
    with db_factory() as db:
        accounts.add_user(db, {}, {"username": "bea", "password": "clave-000"})
        db.commit()
    result = cli("user", "import", str(csv))
    assert_error(result, "línea 4", "bea", after_progress=True)
    assert count(db_factory, "users") == 1


def test_user_import_of_an_oversized_field_is_a_one_line_error(cli, db_factory, tmp_path):
    csv = write_csv(tmp_path / "big.csv", "username,password,community", ["ana,clave-123," + "x" * 200_000])
    assert_error(cli("user", "import", str(csv)), "línea 2")
    assert count(db_factory, "users") == 0


def test_user_import_refuses_a_header_that_repeats_a_column(cli, db_factory, tmp_path):
    csv = write_csv(tmp_path / "dup.csv", "username,password,username", ["ana,clave-123,bea"])
    assert_error(cli("user", "import", str(csv)), "línea 1", "username")
    assert count(db_factory, "users") == 0


# --- staff ------------------------------------------------------------------------------------------------


def test_staff_add_hashes_with_argon2_and_generates_a_password_without_a_tty(cli, db_factory):
    given, generated = cli.many(
        ("staff", "add", "Directora@Municipio.gob.mx", "--role", "admin", "--password", "larga-y-secreta-1"),
        ("staff", "add", "analista@municipio.gob.mx", "--role", "analyst"),   # stdin is not a TTY
    )
    assert given.code == 0, given
    assert "larga-y-secreta-1" not in given.out
    assert generated.code == 0, generated
    last = generated.out.strip().splitlines()[-1]
    assert last.startswith("password: ")
    password = last.removeprefix("password: ")
    assert len(password) >= 12

    stored = dict(rows(db_factory, "SELECT email, password_hash FROM staff"))
    assert set(stored) == {"directora@municipio.gob.mx", "analista@municipio.gob.mx"}
    assert all(h.startswith("$argon2") for h in stored.values())
    assert PasswordHasher().verify(stored["directora@municipio.gob.mx"], "larga-y-secreta-1")
    assert PasswordHasher().verify(stored["analista@municipio.gob.mx"], password)
    assert rows(db_factory, "SELECT role FROM staff ORDER BY email") == [("analyst",), ("admin",)]

    dup, short, shown, listed = cli.many(
        ("staff", "add", "directora@municipio.gob.mx", "--role", "analyst", "--password", "otra-clave-larga"),
        ("staff", "add", "jefe@municipio.gob.mx", "--role", "admin", "--password", "corta"),
        ("staff", "show", "directora@municipio.gob.mx"),
        ("staff", "list"),
    )
    assert_error(dup, "ya existe")
    assert_error(short, "al menos 12 caracteres")
    assert "role: admin" in shown.out and "$argon2" not in shown.out
    assert "analista@municipio.gob.mx" in listed.out and "directora@municipio.gob.mx" in listed.out
    assert count(db_factory, "staff") == 2

    removed = cli("staff", "remove", "analista@municipio.gob.mx")
    assert removed.code == 0, removed
    assert rows(db_factory, "SELECT email FROM staff") == [("directora@municipio.gob.mx",)]


def test_staff_remove_accepts_the_email_as_it_was_added(cli, db_factory):
    with db_factory() as db:
        staffauth.add_staff(db, "Directora@Municipio.gob.mx", "admin", "larga-y-secreta-1")
        db.commit()
    removed = cli("staff", "remove", "Directora@Municipio.gob.mx")
    assert removed.code == 0, removed
    assert count(db_factory, "staff") == 0


def test_nas_login_hosts(cli, db_factory, policies):
    """Where a portal hand-off may go besides the NAS's IP (issue 11): set, checked, cleared."""
    add_site(db_factory, policies)
    added = cli("nas", "add", "ap-rb", "--site", "Parque Hidalgo", "--ip", "10.20.0.6", "--secret", GOOD_SECRET,
                "--vendor", "mikrotik", "--login-hosts", "10.5.50.1, Hotspot.Lan")
    assert added.code == 0, added
    assert rows(db_factory, "SELECT login_hosts FROM nas") == [("10.5.50.1,hotspot.lan",)]
    bad = cli("nas", "set", "ap-rb", "--login-hosts", "http://evil.example/")
    changed = cli("nas", "set", "ap-rb", "--login-hosts", "10.5.50.1,10.5.50.1,login.lan")
    assert_error(bad, "'http://evil.example/' no es una dirección IP ni un nombre de host")
    assert changed.code == 0 and "login_hosts changed" in changed.out, changed
    assert rows(db_factory, "SELECT login_hosts FROM nas") == [("10.5.50.1,login.lan",)]
    assert cli("nas", "set", "ap-rb", "--login-hosts", "").code == 0
    assert rows(db_factory, "SELECT login_hosts FROM nas") == [(None,)]
