"""The write-ahead log on real files: what the applier reads, in what order, and when a segment goes."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from portal.core.accounting import AcctEvent
from radius import wal
from radius.wal import WalReader, WriteAheadLog

pytestmark = pytest.mark.engine_neutral   # the write-ahead log on files


def event(n: int) -> AcctEvent:
    return AcctEvent(nas_id=1, session_id=f"s{n}", status="interim", username="ana", user_id=7, mac=None,
                     framed_ip=None, seconds=n, bytes_in=n, bytes_out=0, terminate_cause=None,
                     event_time=datetime(2026, 11, 26, 18, 0), local_day=date(2026, 11, 26), delay=0, site_id=1)


def ids(batch) -> list[str]:
    return [e.session_id for e, _ in batch]


def apply_all(reader: WalReader, batch) -> None:
    for _, mark in batch:
        reader.mark_applied(mark.segment, mark.ordinal)


@pytest.fixture()
def small_segments(monkeypatch):
    monkeypatch.setattr(wal, "SEGMENT_RECORDS", 3)


def test_records_come_back_in_order_complete_lines_only(tmp_path):
    log = WriteAheadLog(tmp_path)
    reader = WalReader(log.directory)
    assert log.append([event(1), event(2)]) == (1, 2)
    log.file.write(b'{"nas_id": 1, "sess')        # a batch being written: not a record yet
    log.file.flush()
    batch = reader.read(100)
    assert ids(batch) == ["s1", "s2"]
    assert [m.ordinal for _, m in batch] == [1, 2]
    assert batch[0][0] == event(1)
    assert reader.read(100) == []
    log.close()


def test_a_finished_segment_goes_once_applied_the_current_one_stays(tmp_path, small_segments):
    log = WriteAheadLog(tmp_path)
    reader = WalReader(log.directory)
    log.append([event(n) for n in range(1, 4)])   # fills segment 1: the log moves on to segment 2
    log.append([event(4)])
    batch = reader.read(100)
    assert ids(batch) == ["s1", "s2", "s3", "s4"]
    assert wal.segments(log.directory) == [1, 2]   # nothing is deleted before it is applied
    apply_all(reader, batch[:2])
    assert wal.segments(log.directory) == [1, 2]
    apply_all(reader, batch)
    assert wal.segments(log.directory) == [2]      # still written to: kept
    log.close()
    assert reader.read(100) == []                  # the worker let go: segment 2 is finished
    assert wal.segments(log.directory) == []


def test_a_crash_leaves_a_torn_line_that_is_skipped(tmp_path):
    first = WriteAheadLog(tmp_path)
    first.append([event(1)])
    first.file.write(b'{"nas_id": 1, "session_id": "torn"')   # killed in the middle of a write
    first.file.flush()
    first.close()
    second = WriteAheadLog(tmp_path)                 # the restarted worker opens a new segment
    assert (second.directory, second.segment) == (first.directory, 2)
    second.append([event(2)])
    reader = WalReader(second.directory)
    batch = reader.read(100)
    assert ids(batch) == ["s1", "s2"]
    apply_all(reader, batch)
    assert wal.segments(second.directory) == [2]
    second.close()


def test_each_live_worker_holds_its_own_directory(tmp_path):
    a, b = WriteAheadLog(tmp_path), WriteAheadLog(tmp_path)
    assert (a.directory.name, b.directory.name) == ("w0", "w1")
    assert wal.is_held(a.directory) and wal.is_held(b.directory)
    a.close()
    assert not wal.is_held(a.directory)
    c = WriteAheadLog(tmp_path)                      # a restarted worker takes the free one
    assert c.directory.name == "w0"
    b.close()
    c.close()


def test_an_unreadable_line_is_skipped_and_the_rest_applied(tmp_path):
    log = WriteAheadLog(tmp_path)
    log.append([event(1)])
    log.file.write(b"not json\n")
    log.file.flush()
    log.append([event(3)])
    log.close()
    reader = WalReader(log.directory)
    batch = reader.read(100)
    assert ids(batch) == ["s1", "s3"]
    apply_all(reader, batch)
    assert wal.segments(log.directory) == []


def test_workers_see_what_the_applier_has_applied(tmp_path):
    from radius.writer import AccountingLog, Progress
    progress = Progress()
    log = AccountingLog(WriteAheadLog(tmp_path), progress)
    log.start()
    acks: list[bool] = []
    log.log_batch([(event(n), acks.append) for n in range(1, 6)])
    log.stop()                     # logs and acknowledges what was handed over, then closes
    assert acks == [True] * 5
    assert log.backlog() == 5 and not log.idle()
    assert not progress.keeping_up()          # no applier yet: acknowledging would not wait for one
    progress.beat(sql_ok=True)
    assert progress.keeping_up()
    reader = WalReader(log.wal.directory)
    batch = reader.read(100)
    *_, (_, last) = batch
    progress.publish(last.index, last.segment, last.ordinal)
    assert log.backlog() == 0 and log.idle()
    progress.beat(sql_ok=False)
    assert not progress.keeping_up()
    assert not progress.anyone_waiting()
    progress.set_waiting(log.wal.index, True)        # the applier then commits without gathering
    assert progress.anyone_waiting()


def test_reading_in_small_steps_loses_and_repeats_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(wal, "READ_PER_RECORD", 50)     # shorter than one record
    log = WriteAheadLog(tmp_path)
    log.append([event(n) for n in range(1, 6)])
    log.close()
    reader = WalReader(log.directory)
    got = []
    for _ in range(10):
        batch = reader.read(2)
        apply_all(reader, batch)
        got += ids(batch)
    assert got == ["s1", "s2", "s3", "s4", "s5"]
    assert wal.segments(log.directory) == []


def test_a_worker_that_takes_over_a_directory_whose_log_is_all_applied_is_still_read(tmp_path, small_segments):
    """kill -9 of a worker: the applier finishes and deletes its last segment (nobody holds the
    directory), then the replacement claims the same directory. Its records must land in a segment the
    reader has not passed (found by bench/faults_bench.py: numbering restarted at 1 and the replacement's
    acknowledged records were never applied)."""
    for rounds in (1, 2):       # the killed worker had rotated or not
        root = tmp_path / f"r{rounds}"
        first = WriteAheadLog(root)
        reader = WalReader(first.directory)
        for n in range(rounds):
            first.append([event(3 * n + k) for k in range(1, 4 if n < rounds - 1 else 2)])
        first.close()                                   # its lock goes with the process
        batch = reader.read(100)
        apply_all(reader, batch)
        assert reader.read(100) == [] and wal.segments(first.directory) == []   # all applied, deleted
        second = WriteAheadLog(root)
        assert second.directory == first.directory
        second.append([event(100)])
        assert ids(reader.read(100)) == ["s100"]
        second.close()


def test_a_replacement_applier_resumes_where_the_killed_one_had_applied(tmp_path, small_segments):
    """What the killed applier published as applied is neither read again nor kept: re-reading it all
    held acknowledgements back for seconds (bench/faults_bench.py, kill -9 of the applier)."""
    log = WriteAheadLog(tmp_path)
    log.append([event(n) for n in range(1, 4)])     # segment 1, finished
    log.append([event(n) for n in range(4, 6)])     # segment 2: s4, s5
    reader = WalReader(log.directory)
    reader.resume(2, 1)                             # everything up to s4 is in SQL
    assert wal.segments(log.directory) == [2]
    batch = reader.read(100)
    assert ids(batch) == ["s5"]
    log.append([event(6)])                          # fills segment 2: the log moves on
    batch += reader.read(100)
    assert ids(batch) == ["s5", "s6"]
    apply_all(reader, batch)
    assert wal.segments(log.directory) == [3]       # segment 2 went once all of it was applied
    log.close()
