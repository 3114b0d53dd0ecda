"""The accounting write-ahead log: an Accounting-Response goes out once the record is on disk.

Records are appended in batches to segment files and flushed with fdatasync before they are
acknowledged; a background applier moves them into SQL in large batches. Applying is idempotent
(acct_records deduplicates), so after a crash every segment left on disk is simply applied again.
Each server process holds its own directory, locked with flock, under <data dir>/wal/.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from dataclasses import fields
from datetime import date, datetime
from pathlib import Path

from portal.accounting import AcctEvent

log = logging.getLogger(__name__)
SEGMENT_RECORDS = 20_000
FIELDS = tuple(f.name for f in fields(AcctEvent))


def _encode(event: AcctEvent) -> bytes:
    # Flat fields: no need for asdict's deep copy (this runs on the acknowledgement path).
    data = {name: getattr(event, name) for name in FIELDS}
    data["event_time"] = event.event_time.isoformat()
    data["local_day"] = event.local_day.isoformat()
    return json.dumps(data, separators=(",", ":")).encode() + b"\n"


def _decode(line: bytes) -> AcctEvent:
    data = json.loads(line)
    data["event_time"] = datetime.fromisoformat(data["event_time"])
    data["local_day"] = date.fromisoformat(data["local_day"])
    return AcctEvent(**data)


def claim_directory(root: Path) -> tuple[Path, int]:
    """The first <root>/wN not held by another live process, locked for this one."""
    root.mkdir(parents=True, exist_ok=True)
    for index in range(256):
        directory = root / f"w{index}"
        directory.mkdir(exist_ok=True)
        fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return directory, fd
    raise RuntimeError(f"{root}: no free write-ahead log directory")


class WriteAheadLog:
    """Append-and-fsync segments; a segment is deleted once all its records are applied."""

    def __init__(self, root: Path) -> None:
        self.directory, self._lock_fd = claim_directory(root)
        self.lock = threading.Lock()
        self.totals: dict[int, int] = {}     # closed segment -> records in it
        self.applied_count: dict[int, int] = {}
        existing = sorted(int(p.stem) for p in self.directory.glob("*.log"))
        self.segment = (existing[-1] + 1) if existing else 1
        self.count = 0
        self.file = open(self._path(self.segment), "ab")  # noqa: SIM115 - kept open for appends

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}.log"

    def recover(self) -> list[tuple[AcctEvent, int]]:
        """Every record in segments left by an earlier run (to be applied again, idempotently)."""
        out = []
        for path in sorted(self.directory.glob("*.log")):
            segment = int(path.stem)
            if segment == self.segment:
                continue
            lines = [line for line in path.read_bytes().splitlines() if line.strip()]
            events = []
            for line in lines:
                try:
                    events.append(_decode(line))
                except (ValueError, TypeError):  # a torn last line: it was never acknowledged
                    log.warning("write-ahead log %s: skipping an incomplete record", path.name)
            self.totals[segment] = len(events)
            out += [(event, segment) for event in events]
            if not events:
                path.unlink(missing_ok=True)
        return out

    def append(self, events: list[AcctEvent]) -> int:
        """Write and fdatasync a batch; return its segment. Raises OSError if the disk fails."""
        payload = b"".join(_encode(e) for e in events)
        with self.lock:
            self.file.write(payload)
            self.file.flush()
            os.fdatasync(self.file.fileno())
            segment = self.segment
            self.count += len(events)
            if self.count >= SEGMENT_RECORDS:
                self._rotate()
        return segment

    def _rotate(self) -> None:
        self.file.close()
        self.totals[self.segment] = self.count
        self._forget_if_done(self.segment)
        self.segment += 1
        self.count = 0
        self.file = open(self._path(self.segment), "ab")  # noqa: SIM115

    def applied(self, segment: int, n: int) -> None:
        """Note that `n` records of `segment` are now in SQL."""
        with self.lock:
            self.applied_count[segment] = self.applied_count.get(segment, 0) + n
            self._forget_if_done(segment)

    def _forget_if_done(self, segment: int) -> None:
        total = self.totals.get(segment)
        if total is not None and self.applied_count.get(segment, 0) >= total:
            self._path(segment).unlink(missing_ok=True)
            self.totals.pop(segment, None)
            self.applied_count.pop(segment, None)

    def close(self, all_applied: bool) -> None:
        """Close the current segment; delete it when everything in it reached SQL."""
        with self.lock:
            self.file.close()
            if all_applied and self.applied_count.get(self.segment, 0) >= self.count:
                self._path(self.segment).unlink(missing_ok=True)
        os.close(self._lock_fd)
