"""`conecta run` as an operator meets it, for the development install and for a wheel in a venv of its own.

From a folder of the operator's holding decoys (a `policies/` package that raises ImportError and the
like), `conecta init --demo` then `conecta run` on free 127.0.0.1 ports and a data dir in tmp; waited on
until both services answer; checked over HTTP (pages and their stylesheets) and RADIUS (a signed
Status-Server); stopped with SIGTERM, which must end it with status 0 and leave no process behind.
Everything it started is killed (process group and every descendant seen) whatever happens.

The second half builds a wheel of the checkout and installs it into a new venv outside it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import venv
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import NoReturn
from urllib.parse import urljoin

import pytest
from pyrad import packet
from pyrad.client import Client, Timeout
from pyrad.dictionary import Dictionary

from portal.core.radiusdict import DICTIONARY
from radius.packets import STATUS_SERVER

# What an unlucky or hostile folder may hold where the operator stands. Each one fails loudly if it
# is ever imported or run, naming itself; `python -m portal` or gunicorn started there would take them.
DECOYS = {
    "policies/__init__.py": 'raise ImportError("decoy policies/ package of the working directory imported")\n',
    "portal/__init__.py": 'raise ImportError("decoy portal/ package of the working directory imported")\n',
    "radius/__init__.py": 'raise ImportError("decoy radius/ package of the working directory imported")\n',
    "wsgi.py": 'raise ImportError("decoy wsgi.py of the working directory imported")\n',
    "gunicorn.conf.py": 'raise RuntimeError("decoy gunicorn.conf.py of the working directory run")\n',
}
# Variables that would bend imports or settings away from what is under test.
_FOREIGN = ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV",
            "GUNICORN_CMD_ARGS")
# Shipped with the distribution: these folders (every file in them) and this module; nothing else.
SHIPPED_DIRS = ("portal", "radius", "policies", "templates")
SHIPPED_FILES = ("wsgi.py",)


# --- the operator's side --------------------------------------------------------------------------

def plant_decoys(folder: Path) -> Path:
    """A working directory holding DECOYS; returned for chaining."""
    for name, text in DECOYS.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without CONECTA_* settings and without import-path tweaks, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONECTA_") and k not in _FOREIGN}
    env.update(extra)
    return env


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 right now (TCP by default, SOCK_DGRAM for UDP)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_decoys_bite(python: Path, workdir: Path) -> None:
    """A plain `python -c` started in `workdir` imports the decoy: the folder is a real trap."""
    result = subprocess.run([str(python), "-c", "import policies"], cwd=workdir, env=clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "decoy policies/" in result.stderr, result.stderr


@dataclass
class Service:
    """Where one `conecta run` listens and keeps its data."""

    data_dir: Path
    portal_port: int = field(default_factory=free_port)
    auth_port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    acct_port: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    metrics_port: int = field(default_factory=free_port)
    extra: dict[str, str] = field(default_factory=dict)     # more variables for `conecta`

    @property
    def url(self) -> str:
        """The portal's base URL."""
        return f"http://127.0.0.1:{self.portal_port}/"

    def env(self) -> dict[str, str]:
        """The environment `conecta` runs with: embedded defaults, loopback only."""
        return clean_env(CONECTA_DATA_DIR=str(self.data_dir), CONECTA_PORTAL_HOST="127.0.0.1",
                         CONECTA_RADIUS_HOST="127.0.0.1", CONECTA_PORTAL_PORT=str(self.portal_port),
                         CONECTA_RADIUS_AUTH_PORT=str(self.auth_port),
                         CONECTA_RADIUS_ACCT_PORT=str(self.acct_port), CONECTA_METRICS_PORT=str(self.metrics_port),
                         CONECTA_MONITOR_INTERVAL="3", **self.extra)


def init_demo(conecta: Path, workdir: Path, service: Service) -> str:
    """`conecta init --demo`; returns the secret it prints for the demo NAS on 127.0.0.1."""
    result = subprocess.run([str(conecta), "init", "--demo"], cwd=workdir, env=service.env(),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=90)
    output = f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 0, output
    match = re.search(r"for 127\.0\.0\.1, secret: (\S+)", result.stdout)
    assert match, output
    return match.group(1)


# --- processes ------------------------------------------------------------------------------------

def _proc_stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, ppid, process group, start time) of a live process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()    # after "pid (comm) "; comm may hold spaces
    return fields[0], int(fields[1]), int(fields[2]), int(fields[19])


def _processes() -> dict[int, tuple[str, int, int, int]]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _proc_stat(int(entry))) is not None:
            table[int(entry)] = stat
    return table


class Running:
    """One `conecta run` in a process group of its own, its output in a file.

    Every descendant ever seen is remembered (pid and start time, so a reused pid is not mistaken
    for it), to prove none outlives the stop and to kill them all if the test fails.
    """

    def __init__(self, conecta: Path, workdir: Path, service: Service, log: Path) -> None:
        self.conecta, self.workdir, self.service, self.log_path = conecta, workdir, service, log
        self.proc: subprocess.Popen | None = None
        self.seen: dict[int, int] = {}

    def __enter__(self) -> Running:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([str(self.conecta), "run"], cwd=self.workdir, env=self.service.env(),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.kill()

    def output(self, lines: int = 80) -> str:
        """The last lines `conecta run` and its children printed."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _fail(self, why: str) -> NoReturn:
        raise AssertionError(f"{why}\n--- conecta run output (last lines)\n{self.output()}")

    def note_descendants(self) -> list[int]:
        """Remember the live descendants of `conecta run` (and its process group); return them."""
        table = _processes()
        found, frontier = [], [self.proc.pid]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, (_, ppid, _, _) in table.items() if ppid == parent]
            found += children
            frontier += children
        found += [pid for pid, (_, _, pgrp, _) in table.items() if pgrp == self.proc.pid and pid != self.proc.pid]
        for pid in found:
            self.seen.setdefault(pid, table[pid][3])
        return sorted(set(found))

    def leftovers(self) -> list[int]:
        """Processes seen under `conecta run`, or in its group, that are still alive (zombies are not)."""
        alive = [pid for pid, start in self.seen.items()
                 if (stat := _proc_stat(pid)) is not None and stat[3] == start and stat[0] != "Z"]
        in_group = [pid for pid, (state, _, pgrp, _) in _processes().items()
                    if pgrp == self.proc.pid and state != "Z"]
        return sorted(set(alive + in_group))

    def wait_up(self, secret: str, timeout: float = 60.0) -> None:
        """Until the portal's /healthz says 200 and RADIUS answers a Status-Server; fail early if it dies."""
        deadline = time.monotonic() + timeout
        portal = radius = False
        while True:
            if self.proc.poll() is not None:
                self._fail(f"conecta run exited with status {self.proc.returncode} before it was up")
            self.note_descendants()
            portal = portal or get(self.service.url + "healthz", timeout=2)[0] == 200
            radius = radius or status_server(self.service, secret, timeout=1.0) is not None
            if portal and radius:
                return
            if time.monotonic() > deadline:
                self._fail(f"not up after {timeout:.0f} s (portal {portal}, RADIUS {radius})")
            time.sleep(0.3)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM to `conecta run` alone, as a service manager sends it; its exit status."""
        self.note_descendants()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._fail(f"conecta run still running {timeout:.0f} s after SIGTERM")

    def kill(self) -> None:
        """SIGKILL to the process group and to every descendant seen (idempotent)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid, start in self.seen.items():
            stat = _proc_stat(pid)
            if stat is not None and stat[3] == start:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass


# --- what is checked while it runs ----------------------------------------------------------------

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # loopback: never a proxy


def get(url: str, timeout: float = 5.0) -> tuple[int, str, str]:
    """(status, Content-Type, body) of a GET; status 0 when nothing answers."""
    try:
        with _HTTP.open(url, timeout=timeout) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return 0, "", ""


class _Stylesheets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "link" and "stylesheet" in (values.get("rel") or "").split() and values.get("href"):
            self.hrefs.append(values["href"])


def assert_page_with_css(url: str) -> None:
    """The page answers 200 and links at least one stylesheet, each served 200 as text/css."""
    status, _, body = get(url)
    assert status == 200, f"GET {url}: {status}\n{body[:2000]}"
    parser = _Stylesheets()
    parser.feed(body)
    assert parser.hrefs, f"GET {url}: no stylesheet linked\n{body[:2000]}"
    for href in parser.hrefs:
        css_url = urljoin(url, href)
        css_status, content_type, css = get(css_url)
        assert css_status == 200, f"GET {css_url} (linked from {url}): {css_status}"
        assert content_type.startswith("text/css"), f"GET {css_url}: Content-Type {content_type!r}"
        assert css.strip(), f"GET {css_url}: empty"


def status_server(service: Service, secret: str, timeout: float = 2.0) -> packet.Packet | None:
    """A Status-Server with Message-Authenticator to the auth port; the verified reply, or None.

    pyrad keeps only a reply whose Response Authenticator and Message-Authenticator (enforced) are
    right for `secret` and this request.
    """
    client = Client(server="127.0.0.1", authport=service.auth_port, acctport=service.acct_port,
                    secret=secret.encode(), dict=_dictionary(), retries=1, timeout=timeout, enforce_ma=True)
    request = client.CreateAuthPacket(code=STATUS_SERVER)
    request.add_message_authenticator()
    try:
        return client.SendPacket(request)
    except (Timeout, OSError):
        return None
    finally:
        client._CloseSocket()


_DICTIONARY: list[Dictionary] = []


def _dictionary() -> Dictionary:
    if not _DICTIONARY:
        _DICTIONARY.append(Dictionary(str(DICTIONARY)))
    return _DICTIONARY[0]


def assert_metrics_of_every_process(service: Service, running: Running) -> None:
    """The RADIUS daemon's, the monitor's and the portal's metrics, added up on the metrics port (loopback)
    and on the portal's /metrics, which refuses a request that came through a proxy."""
    wanted = (r'conecta_radius_requests_total\{[^}]*type="status"[^}]*\} [1-9]',   # the Status-Server above
              r'conecta_monitor_nas_up\{nas="demo-ap"',                           # the demo NAS, probed
              r"conecta_portal_refusals_total|conecta_portal_registrations_total")   # the portal's counters
    deadline = time.monotonic() + 30
    while True:
        status, content_type, text = get(f"http://127.0.0.1:{service.metrics_port}/metrics")
        missing = [w for w in wanted if not re.search(w, text)]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert status == 200 and content_type.startswith("text/plain"), f"{status} {content_type}\n{running.output()}"
    assert not missing, f"missing {missing} in\n{text[:3000]}\n{running.output()}"
    status, _, portal = get(service.url + "metrics")
    assert status == 200 and "conecta_sessions_open" in portal and re.search(wanted[0], portal), portal[:2000]
    proxied = urllib.request.Request(service.url + "metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    try:
        _HTTP.open(proxied, timeout=5)
        raise AssertionError("/metrics answered a request that came through a proxy")
    except urllib.error.HTTPError as exc:
        assert exc.code == 403


def serve_and_check(conecta: Path, workdir: Path, tmp: Path) -> None:
    """`conecta init --demo` and `conecta run` in `workdir` (data in `tmp`): up, checked, stopped clean."""
    service = Service(data_dir=tmp / "data")
    secret = init_demo(conecta, workdir, service)
    with Running(conecta, workdir, service, tmp / "conecta-run.log") as running:
        running.wait_up(secret)
        assert_page_with_css(service.url)
        assert_page_with_css(service.url + "staff/login")
        reply = status_server(service, secret)
        assert reply is not None, f"no valid reply to Status-Server\n{running.output()}"
        assert reply.code == packet.AccessAccept, f"Status-Server answered with code {reply.code}"
        assert_metrics_of_every_process(service, running)
        children = running.note_descendants()
        assert len(children) >= 4, f"expected Redis, RADIUS and gunicorn with workers, saw {children}"

        status = running.stop()
        assert status == 0, f"conecta run exited with status {status} on SIGTERM\n{running.output()}"
        deadline = time.monotonic() + 3     # a grandchild may still be on its way out
        while (left := running.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not left, f"processes left after conecta run stopped: {_describe(left)}\n{running.output()}"
        assert "decoy" not in running.output(10_000), running.output()


def _describe(pids: list[int]) -> str:
    out = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmdline = "?"
        out.append(f"{pid}: {cmdline.strip()}")
    return "; ".join(out)


# --- the distribution -----------------------------------------------------------------------------

def source_files(root: Path) -> list[str]:
    """The checkout's files as a build sees them: tracked and new files (not git-ignored), and the
    compiled catalogs (git-ignored, built by `make catalogs`) when present. Dotfiles and editor
    leftovers (*~) are not part of the program."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=root, capture_output=True, check=True, timeout=60).stdout
        names = [n for n in listed.decode().split("\0") if n]
    except (OSError, subprocess.SubprocessError):      # not a git checkout: all but the usual junk
        junk = {".git", ".venv", "instance", "build", "dist", "node_modules", "__pycache__"}
        names = [p.relative_to(root).as_posix() for p in root.rglob("*")
                 if not junk.intersection(p.relative_to(root).parts) and ".egg-info" not in p.as_posix()
                 and p.suffix not in (".pyc", ".mo")]
    names += [p.relative_to(root).as_posix() for p in (root / "portal" / "translations").rglob("*.mo")]
    return sorted({n for n in names if (root / n).is_file() and not (root / n).is_symlink()
                   and not any(part.startswith(".") for part in n.split("/")) and not n.endswith("~")})


def copy_sources(root: Path, dest: Path) -> list[str]:
    """Copy source_files() into `dest` (a build there leaves nothing in the checkout); return them."""
    names = source_files(root)
    for name in names:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)
    return names


def shipped(names: list[str]) -> set[str]:
    """Of the source files, those the wheel must hold."""
    return {n for n in names if n in SHIPPED_FILES or n.split("/", 1)[0] in SHIPPED_DIRS}


_SETUPTOOLS_WARNING = re.compile(r"BuildBackendWarning|Setuptools\w*Warning|Package would be ignored"
                                 r"|as data is deprecated")


def build_wheel(source: Path, dist: Path) -> Path:
    """`pip wheel --no-deps` of `source` into `dist`; fails on any setuptools warning."""
    result = _pip([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(source)])
    output = result.stdout + result.stderr
    warned = [line for line in output.splitlines() if _SETUPTOOLS_WARNING.search(line)]
    assert not warned, "setuptools warned while building the wheel:\n" + output
    wheels = list(dist.glob("conecta-*.whl"))
    assert len(wheels) == 1, output
    return wheels[0]


def make_venv(path: Path) -> Path:
    """A new venv (with pip) at `path`; its python."""
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / "bin" / "python"


def install(python: Path, *requirements: str) -> None:
    """`<venv>/bin/pip install` with its dependencies, from the index or the pip cache."""
    _pip([str(python), "-m", "pip", "install", *requirements])


def _pip(argv: list[str]) -> subprocess.CompletedProcess:
    """Run pip; skip when this machine can install nothing at all (no index reachable, no pip cache)."""
    env = clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
    if result.returncode == 0:
        return result
    with tempfile.TemporaryDirectory() as scratch:     # can pip fetch anything, from the index or its cache?
        probe = subprocess.run([argv[0], "-m", "pip", "download", "--no-deps", "-q", "-d", scratch, "tzdata"],
                               env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if probe.returncode != 0:
        pytest.skip("pip can install nothing here (no package index reachable and nothing in the pip cache): "
                    + probe.stderr.strip()[-1000:])
    raise AssertionError(f"{' '.join(argv)}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")


def installed_paths(python: Path, workdir: Path) -> dict[str, str]:
    """Where `python` (run in `workdir`, as the console script would: cwd off sys.path) finds our
    top-level names, and its site-packages; found without importing anything of ours."""
    script = ("import importlib.util, json, sysconfig\n"
              "found = {n: importlib.util.find_spec(n).origin for n in ('portal', 'radius', 'policies', 'wsgi')}\n"
              "found['site-packages'] = sysconfig.get_paths()['purelib']\n"
              "print(json.dumps(found))\n")
    result = subprocess.run([str(python), "-P", "-c", script], cwd=workdir, env=clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
