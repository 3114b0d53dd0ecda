"""The monitor's reads and writes: what to probe, the saved states, the lease, and one fenced
transaction per flush.

One monitor works per deployment. The lease is the `monitor_status` row: a monitor takes it when the
holder's heartbeat is stale (or the holder was a process of this machine that is gone), and every
write checks that the epoch it took is still the newest, so a monitor that stalled and lost the lease
writes nothing more (the epoch is a fencing token).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session as DbSession

from portal.core.model import MonitorStatus, Nas, NodeEvent, NodeState
from portal.core.nodestate import COLUMNS, Drained, Node

LEASE_TTL = timedelta(seconds=15)   # a holder silent this long is taken over


class LeaseLostError(Exception):
    """Another monitor took the lease: this one must stop writing."""


@dataclass(frozen=True)
class Target:
    """A NAS to watch, as the monitor needs it."""

    nas_id: int
    site_id: int
    name: str
    ip: str
    probe: str


def holder_id() -> str:
    """This process, as the lease names it: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def targets(db: DbSession) -> list[Target]:
    """Every registered NAS with its probe."""
    rows = db.execute(select(Nas.id, Nas.site_id, Nas.name, Nas.ip, Nas.probe).order_by(Nas.id))
    return [Target(*row) for row in rows]


def saved_nodes(db: DbSession, known: dict[int, Target]) -> list[Node]:
    """The saved states of the NAS in `known` (rows of NAS no longer registered are left out)."""
    nodes = []
    for row in db.scalars(select(NodeState)):
        target = known.get(row.nas_id)
        if target is not None:
            nodes.append(Node(site_id=target.site_id, name=target.name,
                              **{k: getattr(row, k) for k in COLUMNS}))
    return nodes


def _holder_gone(holder: str) -> bool:
    """True when the holder was a process of this machine that no longer runs."""
    host, _, pid = holder.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not os.path.exists(f"/proc/{pid}")


def acquire(db: DbSession, me: str, now: datetime, interval: float) -> int | None:
    """Take the lease when it is free; return the new epoch, or None while another monitor holds it."""
    row = db.get(MonitorStatus, 1)
    if row is None:
        db.add(MonitorStatus(id=1, epoch=1, holder=me, heartbeat=now, interval=interval))
        db.commit()
        return 1
    if row.holder not in ("", me) and row.heartbeat is not None and now - row.heartbeat < LEASE_TTL \
            and not _holder_gone(row.holder):
        return None
    epoch = row.epoch + 1     # read before the UPDATE, which refreshes `row`
    taken = db.execute(update(MonitorStatus).where(MonitorStatus.id == 1, MonitorStatus.epoch == row.epoch)
                       .values(epoch=epoch, holder=me, heartbeat=now, interval=interval)).rowcount
    db.commit()
    return epoch if taken else None


def release(db: DbSession, epoch: int) -> None:
    """Give the lease up at a clean stop, so another monitor may take it at once."""
    db.execute(update(MonitorStatus).where(MonitorStatus.id == 1, MonitorStatus.epoch == epoch)
               .values(holder="", heartbeat=None))
    db.commit()


def fence(db: DbSession, epoch: int, now: datetime) -> None:
    """Beat the heartbeat, or raise LeaseLostError when a newer epoch took the lease."""
    beat = db.execute(update(MonitorStatus).where(MonitorStatus.id == 1, MonitorStatus.epoch == epoch)
                      .values(heartbeat=now)).rowcount
    if not beat:
        raise LeaseLostError(f"epoch {epoch} is no longer the newest")


def save(db: DbSession, drained: Drained, epoch: int, now: datetime) -> None:
    """Write node states, history periods and removals in one fenced transaction."""
    fence(db, epoch, now)
    inserts = [n.row() for n in drained.nodes if n.new]
    updates = [n.row() for n in drained.nodes if not n.new]
    if inserts:
        db.execute(insert(NodeState), inserts)
    if updates:
        db.execute(update(NodeState), updates)
    for t in drained.transitions:
        db.execute(update(NodeEvent).where(NodeEvent.nas_id == t.nas_id, NodeEvent.ended_at.is_(None))
                   .values(ended_at=t.at))
        if t.state is not None:
            db.add(NodeEvent(nas_id=t.nas_id, site_id=t.site_id, nas_name=t.name, state=t.state, started_at=t.at))
    if drained.removed:
        db.execute(delete(NodeState).where(NodeState.nas_id.in_(drained.removed)))
    db.commit()
