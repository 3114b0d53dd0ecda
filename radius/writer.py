"""The acknowledgement path: accounting is made durable in the write-ahead log, then answered.

The RADIUS loop hands over each batch of parsed Accounting-Requests; a thread appends everything
that arrived meanwhile to the log, fsyncs once (group commit) and only then sends the responses
(RFC 2866: no response before the record is stored). Moving the records into SQL is the applier's
work (radius/applier.py), in another process in production: applying shares no GIL and no CPU
priority with the replies. The two meet in `Progress`, a few integers in shared memory.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable

from portal.core.accounting import AcctEvent
from radius.wal import MAX_DIRECTORIES, WriteAheadLog

log = logging.getLogger(__name__)
MAX_BACKLOG = 4000      # records acknowledged but not yet applied, per worker, while SQL keeps up
ALIVE_MS = 3000         # an applier silent for longer is not waited for (it is being restarted)

Ack = Callable[[bool], None]


def _now_ms() -> int:
    return int(time.monotonic() * 1000)   # CLOCK_MONOTONIC: the same clock in every process


class Progress:
    """What the applier has applied from each log directory, in memory shared with the workers.

    Cell 0 is the applier's heartbeat (monotonic ms) while SQL takes its batches, 0 while it does
    not; cell 1 + N is (segment << 32 | ordinal) of the last record of directory wN that is in SQL
    and counted in Redis; the cells after those say which workers wait for the applier. One 64-bit
    cell per value, so a reader never sees half an update.
    """

    def __init__(self) -> None:
        self.cells = multiprocessing.RawArray(ctypes.c_int64, 2 * MAX_DIRECTORIES + 1)

    def beat(self, sql_ok: bool) -> None:
        """Say the applier is alive, and whether SQL takes its batches."""
        self.cells[0] = _now_ms() if sql_ok else 0

    def keeping_up(self) -> bool:
        """True while a live applier commits to SQL (then acknowledging waits for it)."""
        return _now_ms() - self.cells[0] < ALIVE_MS

    def publish(self, index: int, segment: int, ordinal: int) -> None:
        """Record that directory `index` is applied up to this record."""
        if index < MAX_DIRECTORIES:
            self.cells[index + 1] = segment << 32 | ordinal

    def set_waiting(self, index: int, waiting: bool) -> None:
        """Say that worker `index` holds back acknowledgements until the applier catches up."""
        if index < MAX_DIRECTORIES:
            self.cells[MAX_DIRECTORIES + 1 + index] = int(waiting)

    def anyone_waiting(self) -> bool:
        """True while some worker waits for the applier (which then commits without gathering)."""
        return any(self.cells[MAX_DIRECTORIES + 1:])

    def position(self, index: int) -> tuple[int, int]:
        """(segment, ordinal) applied in directory `index`."""
        value = self.cells[index + 1]
        return value >> 32, value & 0xFFFFFFFF


class AccountingLog:
    """Group commit on the write-ahead log and the acknowledgements, in a thread."""

    def __init__(self, wal: WriteAheadLog, progress: Progress) -> None:
        self.wal = wal
        self.progress = progress
        self.incoming: queue.SimpleQueue = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="acct-log", daemon=True)
        self.stopping = threading.Event()
        self.position = (wal.segment, 0)    # of the last record appended
        self.handed = self.logged = 0       # records handed over / appended (or refused)

    def log_batch(self, items: list[tuple[AcctEvent, Ack]]) -> None:
        """Hand a batch over: it is made durable, then each record is acknowledged."""
        self.handed += len(items)
        self.incoming.put(items)

    def start(self) -> None:
        """Start the log thread."""
        self.thread.start()

    def stop(self) -> None:
        """Log and answer what was handed over, then close the log (the applier finishes it)."""
        self.incoming.put(None)
        self.stopping.set()
        self.thread.join(timeout=10)
        self.wal.close()

    def idle(self) -> bool:
        """True when every record handed over is in SQL and counted in Redis (tests wait on this)."""
        return self.logged >= self.handed and self.backlog() <= 0

    def backlog(self) -> int:
        """Records of the current segment acknowledged but not yet applied."""
        segment, ordinal = self.progress.position(self.wal.index)
        mine, count = self.position
        if segment > mine:
            return 0
        return count - ordinal if segment == mine else count

    def _run(self) -> None:
        while True:
            first = self.incoming.get()
            if first is None:
                return
            items = list(first)
            while True:
                try:
                    more = self.incoming.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self.incoming.put(None)
                    break
                items += more
            self._log(items)

    def _log(self, items: list[tuple[AcctEvent, Ack]]) -> None:
        # Back-pressure: while SQL takes records but slower than they come, acknowledge no faster
        # than they are applied, so a burst cannot pile up a debt for later. (While SQL or the
        # applier is away the log keeps acknowledging: the records wait on disk.)
        if self.backlog() > MAX_BACKLOG and self.progress.keeping_up():
            self.progress.set_waiting(self.wal.index, True)
            while self.backlog() > MAX_BACKLOG and self.progress.keeping_up() and not self.stopping.is_set():
                time.sleep(0.002)
            self.progress.set_waiting(self.wal.index, False)
        try:
            self.position = self.wal.append([e for e, _ in items])
        except OSError as exc:   # disk full or failing: no acknowledgement, the NAS retransmits
            log.error("write-ahead log append failed (%s); %d records not acknowledged", exc, len(items))
            for _, ack in items:
                ack(False)
            self.logged += len(items)
            return
        for _, ack in items:
            ack(True)
        self.logged += len(items)
