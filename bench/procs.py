"""Server processes the benchmark starts: log to a file, wait for a line, stop by PID, read CPU and RSS."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTED: list[Server] = []


class StartError(RuntimeError):
    """A server did not come up; the message names its log."""


class Server:
    """One started process (and the PID of the RADIUS server behind it, if different)."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict | None = None) -> None:
        self.name = name
        self.log = log
        self.logf = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL)
        self.server_pid = self.proc.pid
        STARTED.append(self)

    @property
    def pid(self) -> int:
        """The PID of the process started."""
        return self.proc.pid

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        """Wait until the log has a line matching `pattern`; raise StartError if it exits or times out."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = rx.search(self.log.read_text(errors="replace"))
            if match:
                return match
            if self.proc.poll() is not None:
                raise StartError(f"{self.name} exited with status {self.proc.returncode}; see {self.log}")
            time.sleep(0.1)
        raise StartError(f"{self.name} not ready after {timeout:.0f} s; see {self.log}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, wait, then SIGKILL; only this process (and the server PID it reported)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.server_pid != self.proc.pid and _alive(self.server_pid):
            os.kill(self.server_pid, signal.SIGKILL)
        self.logf.close()
        if self in STARTED:
            STARTED.remove(self)

    def cpu_seconds(self) -> float:
        """User+system CPU of the RADIUS server so far, its worker processes included."""
        return sum(proc_cpu(pid) for pid in family(self.server_pid))

    def rss_kib(self) -> dict[str, int]:
        """Memory of the server and its workers in KiB: VmRSS and VmHWM as the sum of proportional set
        sizes (pages the forked workers share with their parent are counted once, not per process)."""
        total = 0
        for pid in family(self.server_pid):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        return {"VmRSS": total, "VmHWM": total}


def family(pid: int) -> list[int]:
    """A process and its children (`conecta radius` forks one worker per core on PostgreSQL)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid] + [int(c) for c in children]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def proc_cpu(pid: int) -> float:
    """User+system CPU seconds of one process (0 if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_cpu() -> dict[int, float]:
    """CPU seconds per PostgreSQL process (read only; the server is shared with other work)."""
    uid, out = _postgres_uid(), {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    out[int(entry.name)] = proc_cpu(int(entry.name))
            except OSError:
                continue
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two postgres_cpu() snapshots (processes that exited meanwhile are not counted)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _postgres_uid() -> int:
    import pwd
    try:
        return pwd.getpwnam("postgres").pw_uid
    except KeyError:
        return -1


def stop_all() -> None:
    """Stop every server this benchmark started, newest first."""
    for server in reversed(list(STARTED)):
        try:
            server.stop()
        except Exception as exc:  # noqa: BLE001 - keep stopping the others
            print(f"warning: could not stop {server.name} (pid {server.pid}): {exc}")


def port_in_use(port: int) -> bool:
    """True if something has UDP port `port` bound on 127.0.0.1 or any address."""
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        return True
    finally:
        s.close()
    return False


def box_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def box_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy over `seconds` (other processes included)."""
    b0, t0 = box_ticks()
    time.sleep(seconds)
    b1, t1 = box_ticks()
    return (b1 - b0) / max(1, t1 - t0)


def wait_quiet(limit: float = 0.25, patience: float = 2.0) -> float:
    """Wait (at most `patience` s) until the machine is less than `limit` busy; return the last reading."""
    deadline = time.monotonic() + patience
    busy = box_busy()
    while busy > limit and time.monotonic() < deadline:
        busy = box_busy()
    return busy
