"""Debian's real openNDS in network namespaces of our own: a gateway, a client and an "internet".

    host (the portal) --veth-- gateway: openNDS + dnsmasq --veth-- client (DHCP lease, a phone's HTTP)
                                  \\--veth-- internet: a page of known size

The gateway's namespace also has a mount namespace of its own: an overlay over /etc (openNDS writes
/etc/hosts and /etc/dnsmasq.conf and reads /etc/opennds/opennds.conf whatever -c says), private tmpfs
on /tmp and /run (its socket, logs and client database; dnsmasq's leases), and a patched libopennds.sh
bind-mounted over Debian's (openNDS issue #429: with iptables-nft, 9.10 exits at start-up). Nothing
leaves the namespaces; `close()` removes them all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote

from tests.support.netns import TestHost, netns_unavailable

HERE = Path(__file__).resolve().parent
LIBRARY = Path("/usr/lib/opennds/libopennds.sh")
NEEDED = ("opennds", "ndsctl", "dnsmasq", "nft", "iptables", "unshare", "nsenter")
LAN = "10.77.0"                 # the client's network behind the gateway
WAN = "198.51.100"              # the "internet" (TEST-NET-2)
PAGE_SIZE = 200_000             # the internet page: big enough that its bytes stand out


@lru_cache(maxsize=1)
def opennds_unavailable() -> str | None:
    """Why the real-openNDS test cannot run here, or None."""
    reason = netns_unavailable()
    if reason:
        return reason
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing or not LIBRARY.exists():
        return (f"openNDS and its tools are not installed ({', '.join(missing) or LIBRARY}); "
                "`make test` as root installs them")
    return None


def _run(argv: list[str], timeout: float = 15, check: bool = True, stdin: str | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=stdin)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:6])}: {done.returncode} {done.stderr.strip()[:300]}")
    return done.stdout


def patched_library(folder: Path) -> Path:
    """libopennds.sh without the INPUT/FORWARD re-creation at priority -100 that iptables-nft refuses
    (openNDS #429, fixed upstream after 9.10): openNDS's own chains at priority 100 still accept."""
    text = LIBRARY.read_text()
    start = text.index("\t# Test INPUT and FORWARD chain priority")
    end = text.index("\tnft add chain ip filter nds_allow_INP")
    path = folder / "libopennds.sh"
    path.write_text(text[:start] + text[end:])
    path.chmod(0o755)
    return path


class Lab:
    """The three namespaces and the gateway's mount namespace; openNDS is (re)started per configuration."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.uplink = TestHost()            # the gateway's namespace, joined to this one
        self.gw = self.uplink.ns
        self.client = f"{self.gw}-c"
        self.internet = f"{self.gw}-i"
        self.holder: subprocess.Popen | None = None
        self.procs: list[subprocess.Popen] = []
        self.opennds: subprocess.Popen | None = None
        try:
            self._links()
            self._mounts()
            self._services()
        except Exception:
            self.close()
            raise

    # -- set-up -------------------------------------------------------------------------------------
    def _links(self) -> None:
        for ns in (self.client, self.internet):
            _run(["ip", "netns", "add", ns])
        gw = ["ip", "netns", "exec", self.gw]
        _run([*gw, "ip", "link", "add", "ndslan", "type", "veth", "peer", "name", "eth0", "netns", self.client])
        _run([*gw, "ip", "link", "add", "wan2", "type", "veth", "peer", "name", "eth0", "netns", self.internet])
        _run([*gw, "ip", "addr", "add", f"{LAN}.1/24", "dev", "ndslan"])
        _run([*gw, "ip", "addr", "add", f"{WAN}.1/24", "dev", "wan2"])
        for dev in ("ndslan", "wan2"):
            _run([*gw, "ip", "link", "set", dev, "up"])
        _run([*gw, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        # The gateway NATs its clients, as an OpenWrt router does (its own table, apart from openNDS's).
        _run([*gw, "nft", "add table ip conecta_nat; add chain ip conecta_nat post { type nat hook postrouting "
              "priority 100 ; } ; add rule ip conecta_nat post oifname != \"ndslan\" masquerade"])
        inet = ["ip", "netns", "exec", self.internet]
        _run([*inet, "ip", "addr", "add", f"{WAN}.10/24", "dev", "eth0"])
        for dev in ("eth0", "lo"):
            _run([*inet, "ip", "link", "set", dev, "up"])
        for dev in ("eth0", "lo"):
            _run(["ip", "netns", "exec", self.client, "ip", "link", "set", dev, "up"])

    def _mounts(self) -> None:
        state = self.folder / "gw-state"
        state.mkdir()
        library = patched_library(self.folder)
        script = (f"set -e; mount -t tmpfs tmpfs {state}; mkdir {state}/up {state}/work; "
                  f"mount -t overlay overlay -o lowerdir=/etc,upperdir={state}/up,workdir={state}/work /etc; "
                  f"mount --bind {library} {LIBRARY}; "
                  "mount -t tmpfs tmpfs /run; mkdir -p /run/tmpfiles.d; mount -t tmpfs tmpfs /tmp; "
                  "echo ready; exec sleep 3600")
        self.holder = subprocess.Popen(["ip", "netns", "exec", self.gw, "unshare", "-m", "--propagation", "private",
                                        "sh", "-c", script], stdout=subprocess.PIPE, text=True)
        if self.holder.stdout.readline().strip() != "ready":
            raise RuntimeError("the gateway's mount namespace did not come up")

    def on_gateway(self, *argv: str, timeout: float = 15, check: bool = True, stdin: str | None = None) -> str:
        """Run a command in the gateway's network and mount namespaces."""
        return _run(["nsenter", "-t", str(self.holder.pid), "-m", "-n", "--", *argv], timeout, check, stdin)

    def spawn_on_gateway(self, *argv: str, log: Path) -> subprocess.Popen:
        """Start a long-running process in the gateway's namespaces (a process group of its own), its
        output to `log`."""
        with log.open("ab") as out:
            proc = subprocess.Popen(["nsenter", "-t", str(self.holder.pid), "-m", "-n", "--", *argv],
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def authmon_round(self, url: str, gatewayhash: str) -> tuple[str, list[str], str]:
        """One round of openNDS's authmon, with its own PHP client (post-request.php) and ndsctl: fetch
        the clients to let in, `ndsctl auth` each, acknowledge those it did. (authmon.sh does the same
        every 10 s, after a 5 s start.) Returns what the FAS listed, ndsctl's answers and the ack."""
        agent = "openNDS(authmon;NDS:9.10.0;)"
        post = ["php", "-f", "/usr/lib/opennds/post-request.php", url]
        listed = self.on_gateway(*post, "view", gatewayhash, agent, "none")
        answers, acked = [], "*"
        for item in listed.split()[1:] if listed.startswith("*") else []:
            params = unquote(item).split()
            answers.append(self.on_gateway("ndsctl", "auth", *params, check=False).strip())
            if "authenticated." in answers[-1]:
                acked += " " + params[0]
        ack = self.on_gateway(*post, "view", gatewayhash, agent, acked)
        return listed, answers, ack

    def _services(self) -> None:
        self.spawn_on_gateway("dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--user=root",
                              "--interface=ndslan", "--bind-interfaces", f"--dhcp-range={LAN}.50,{LAN}.99,1h",
                              "--dhcp-leasefile=/tmp/dhcp.leases", "--pid-file=/run/dnsmasq.pid",
                              log=self.folder / "dnsmasq.log")
        page = self.folder / "page"
        page.mkdir()
        (page / "index.html").write_bytes(b"<p>internet</p>" + b"x" * (PAGE_SIZE - 15))
        proc = subprocess.Popen(["ip", "netns", "exec", self.internet, sys.executable, "-m", "http.server", "80",
                                 "--bind", f"{WAN}.10", "--directory", str(page)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        self.client_ip = _run(["ip", "netns", "exec", self.client, sys.executable, str(HERE / "dhcpclient.py"),
                               "eth0"], timeout=30).strip()

    # -- openNDS --------------------------------------------------------------------------------------
    def start_opennds(self, config: str, extra_files: dict[str, str] | None = None) -> None:
        """(Re)start openNDS with `config` as /etc/opennds/opennds.conf (where its scripts read it)."""
        self.stop_opennds()
        self.on_gateway("sh", "-c", "cat > /etc/opennds/opennds.conf", stdin=config)
        for path, text in (extra_files or {}).items():
            self.on_gateway("sh", "-c", f"cat > {path} && chmod 755 {path}", stdin=text)
        self.opennds = self.spawn_on_gateway("opennds", "-f", "-d", "3", "-c", "/etc/opennds/opennds.conf",
                                             log=self.folder / "opennds.log")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.opennds.poll() is not None:
                raise RuntimeError(f"openNDS exited: {self.log()[-2000:]}")
            if "Version" in self.on_gateway("ndsctl", "status", check=False):
                return
            time.sleep(0.3)
        raise RuntimeError(f"openNDS did not come up: {self.log()[-2000:]}")

    def stop_opennds(self) -> None:
        """Stop openNDS (its BinAuth sees shutdown_deauth for every client)."""
        if self.opennds is None or self.opennds.poll() is not None:
            return
        self.on_gateway("ndsctl", "stop", check=False)
        try:
            self.opennds.wait(15)
        except subprocess.TimeoutExpired:
            self.opennds.kill()
            self.opennds.wait(5)

    def log(self) -> str:
        """openNDS's output so far."""
        path = self.folder / "opennds.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def clients(self) -> dict:
        """`ndsctl json`: openNDS's clients, by MAC."""
        out = self.on_gateway("ndsctl", "json")
        return json.loads(out or "{}").get("clients", {})

    def phone(self, *args: str, timeout: float = 60) -> dict:
        """Run the phone (tests/support/ndsphone.py) in the client's namespace; its JSON report."""
        out = _run(["ip", "netns", "exec", self.client, sys.executable, str(HERE / "ndsphone.py"), *args],
                   timeout=timeout)
        return json.loads(out)

    def close(self) -> None:
        """Stop everything and remove the namespaces."""
        try:
            self.stop_opennds()
        except Exception:  # noqa: BLE001, S110 - tear-down goes on
            pass
        for proc in self.procs:   # each in a group of its own: authmon's sleep goes too
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        for ns in (self.gw, self.client, self.internet):   # what openNDS started of its own, by id
            for pid in _run(["ip", "netns", "pids", ns], check=False).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait(5)
        for ns in (self.client, self.internet):
            _run(["ip", "netns", "del", ns], check=False)
        self.uplink.close()


def opennds_conf(level: int, portal_ip: str, portal_port: int, faskey: str, gatewayname: str,
                 binauth: str | None = None) -> str:
    """An opennds.conf for FAS `level` pointing at the portal."""
    lines = [
        "GatewayInterface ndslan", f"GatewayName {gatewayname}", "GatewayPort 2050",
        f"fasport {portal_port}", f"fasremoteip {portal_ip}", "faspath /", f"fas_secure_enabled {level}",
        f"faskey {faskey}", "gatewayfqdn disable", "dhcp_default_url_enable 0", "checkinterval 5",
    ]
    if binauth:
        lines.append(f"binauth {binauth}")
    rules = ("FirewallRuleSet preauthenticated-users {\n}\nFirewallRuleSet authenticated-users {\n"
             "    FirewallRule allow all\n}\nFirewallRuleSet users-to-router {\n    FirewallRule allow udp port 53\n"
             "    FirewallRule allow tcp port 53\n    FirewallRule allow udp port 67\n}\n")
    return "\n".join(lines) + "\n" + rules
