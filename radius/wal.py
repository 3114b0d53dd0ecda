"""The accounting write-ahead log: an Accounting-Response goes out once the record is on disk.

Each RADIUS worker appends batches to segment files in its own directory (<data dir>/wal/wN,
held with flock) and fdatasyncs them before acknowledging. The applier (radius/applier.py) tails
every directory, moves the records into SQL and deletes a segment once it is finished (a newer one
exists, or no worker holds the directory) and everything in it is applied. Applying is idempotent
(acct_records deduplicates), so whatever is on disk after a crash is simply read and applied again.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from dataclasses import dataclass, fields
from datetime import date, datetime
from pathlib import Path

from portal.core.accounting import AcctEvent

log = logging.getLogger(__name__)
SEGMENT_RECORDS = 20_000
MAX_DIRECTORIES = 64
READ_PER_RECORD = 2048   # bytes read per record wanted (records are about 300 bytes)
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


def segment_path(directory: Path, segment: int) -> Path:
    """The file of one segment."""
    return directory / f"{segment:012d}.log"


def segments(directory: Path) -> list[int]:
    """The segment numbers present in a directory, oldest first."""
    return sorted(int(p.stem) for p in directory.glob("*.log") if p.stem.isdigit())


def directory_index(directory: Path) -> int:
    """N of a worker's log directory wN."""
    return int(directory.name[1:])


def log_directories(root: Path) -> list[Path]:
    """Every worker's log directory under `root`, live or left behind."""
    return sorted(p for p in root.glob("w*") if p.name[1:].isdigit())


def claim_directory(root: Path) -> tuple[Path, int]:
    """The first <root>/wN not held by another live process, locked for this one."""
    root.mkdir(parents=True, exist_ok=True)
    for index in range(MAX_DIRECTORIES):
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


def next_segment(directory: Path) -> int:
    """One more than any segment this directory ever had. Not just one more than the files present:
    after a worker dies, the applier finishes and deletes its last segment, and its reader only looks
    forward, so a replacement that started again at 1 would write records that are never applied."""
    try:
        recorded = int((directory / "next").read_text())
    except (OSError, ValueError):
        recorded = 1
    existing = segments(directory)
    return max(recorded, existing[-1] + 1 if existing else 1)


def is_held(directory: Path) -> bool:
    """True while a worker holds the directory (it may still append to its newest segment)."""
    try:
        fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)     # closing drops the probe's lock at once: a starting worker can claim it


class WriteAheadLog:
    """Append-and-fsync segments in a directory this process holds."""

    def __init__(self, root: Path) -> None:
        self.directory, self._lock_fd = claim_directory(root)
        self.index = directory_index(self.directory)
        self.lock = threading.Lock()
        self.segment = next_segment(self.directory)
        self.count = 0          # records in the current segment
        self.file = self._open(self.segment)

    def append(self, events: list[AcctEvent]) -> tuple[int, int]:
        """Write and fdatasync a batch; return (segment, records in it so far). Raises OSError."""
        payload = b"".join(_encode(e) for e in events)
        with self.lock:
            try:
                if self.file is None:           # a disk that was full: the next segment opens now
                    self.file = self._open(self.segment)
                self.file.write(payload)
                self.file.flush()
                os.fdatasync(self.file.fileno())
            except OSError:
                # What reached the file may end in a torn line: later records must not follow it.
                try:
                    self._rotate()
                except OSError:
                    pass                        # opened by the next append
                raise
            self.count += len(events)
            position = (self.segment, self.count)
            if self.count >= SEGMENT_RECORDS:
                try:
                    self._rotate()
                except OSError:
                    pass
        return position

    def _open(self, segment: int):  # noqa: ANN202 - a binary file
        # Note the number first: see next_segment.
        marker = self.directory / "next"
        (self.directory / "next.tmp").write_text(str(segment + 1))
        os.replace(self.directory / "next.tmp", marker)
        return open(segment_path(self.directory, segment), "ab")  # noqa: SIM115 - kept open

    def _rotate(self) -> None:
        """Close the segment and open the next one (OSError: the next append opens it)."""
        try:
            if self.file is not None:
                self.file.close()
        except OSError:
            pass
        self.segment += 1
        self.count = 0
        self.file = None
        self.file = self._open(self.segment)

    def close(self) -> None:
        """Close the current segment and let go of the directory (the applier finishes it)."""
        with self.lock:
            if self.file is not None:
                self.file.close()
        os.close(self._lock_fd)


@dataclass
class Mark:
    """Where a record sits: directory index, segment, and its ordinal in the segment (from 1)."""

    index: int
    segment: int
    ordinal: int


class WalReader:
    """Tails one worker's directory: complete lines only, in order, each segment to its end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.index = directory_index(directory)
        self.segment = 0          # being read; 0 until the first segment is found
        self.offset = 0
        self.ordinal = 0          # lines read from the current segment
        self.last_good = 0        # ordinal of its last readable record
        self.totals: dict[int, int] = {}      # finished segment -> lines in it, until applied
        self.applied: dict[int, int] = {}
        self.skip = (0, 0)        # (segment, ordinal) up to which records are known to be applied

    def resume(self, segment: int, ordinal: int) -> None:
        """Start after what a previous applier (killed) published as applied: the segments before
        `segment` are applied entirely and go; its first `ordinal` records are not read again."""
        if segment <= 0:
            return
        for older in segments(self.directory):
            if older < segment:
                segment_path(self.directory, older).unlink(missing_ok=True)
        self.skip = (segment, ordinal)

    def read(self, limit: int, finishing: bool = False) -> list[tuple[AcctEvent, Mark]]:
        """Up to `limit` new records; `finishing` when no worker may append any more."""
        out: list[tuple[AcctEvent, Mark]] = []
        while len(out) < limit:
            present = [s for s in segments(self.directory) if s >= self.segment]
            if not present:
                return out
            if present[0] != self.segment:
                self._start(present[0])
            # Look for a newer segment *before* reading: once it exists this one gets no more lines.
            final = finishing or len(present) > 1 or not is_held(self.directory)
            got, at_end = self._read_lines(limit - len(out), final)
            out += got
            if not (at_end and final):
                return out
            self.totals[self.segment] = self.last_good
            self.forget_applied(self.segment)
            self._start(self.segment + 1)
        return out

    def _start(self, segment: int) -> None:
        self.segment, self.offset, self.ordinal, self.last_good = segment, 0, 0, 0

    def _read_lines(self, limit: int, final: bool) -> tuple[list[tuple[AcctEvent, Mark]], bool]:
        """Complete lines from the offset on, and whether that was all the segment has."""
        path = segment_path(self.directory, self.segment)
        want = limit * READ_PER_RECORD
        try:
            with open(path, "rb") as f:
                f.seek(self.offset)
                data = f.read(want)
                if b"\n" not in data:
                    data += f.readline()      # a record longer than the chunk: read to its end
                eof = not f.read(1)
        except FileNotFoundError:
            return [], True
        lines = data[:data.rfind(b"\n") + 1].split(b"\n")[:-1]
        if final and eof and data and not data.endswith(b"\n") and len(lines) <= limit:
            log.warning("write-ahead log %s: skipping an incomplete last record (never acknowledged)", path.name)
        out = []
        for line in lines[:limit]:
            self.offset += len(line) + 1
            self.ordinal += 1
            if (self.segment, self.ordinal) <= self.skip:    # applied before this reader began
                self.last_good = self.ordinal
                self.applied[self.segment] = self.ordinal
                continue
            try:
                out.append((_decode(line), Mark(self.index, self.segment, self.ordinal)))
                self.last_good = self.ordinal
            except (ValueError, TypeError):
                log.warning("write-ahead log %s: skipping an unreadable record", path.name)
        return out, eof and len(lines) <= limit

    def mark_applied(self, segment: int, ordinal: int) -> None:
        """Note that the records of `segment` up to `ordinal` are in SQL."""
        self.applied[segment] = max(self.applied.get(segment, 0), ordinal)
        self.forget_applied(segment)

    def forget_applied(self, segment: int) -> None:
        """Delete a finished segment whose every record is applied."""
        total = self.totals.get(segment)
        if total is not None and self.applied.get(segment, 0) >= total:
            segment_path(self.directory, segment).unlink(missing_ok=True)
            self.totals.pop(segment, None)
            self.applied.pop(segment, None)
