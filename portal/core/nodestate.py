"""What the monitor makes of probe results: each NAS's state, and the periods (events) of its history.

States: `pending` (not probed yet), `up` (answers), `failing` (probes fail, not yet confirmed),
`down` (confirmed: `confirmations` failures in a row), `unprobed` (probe `none`). History is kept as
periods of `up`, `down` and `unprobed`: a confirmed outage begins at its first failed probe, so the
`up` period before it ends there too. Recovery needs one answer. Pure Python: the monitor feeds it
results and writes what it drained (portal/core/nodestore.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta


@dataclass
class Node:
    """One NAS as the monitor knows it (the `node_state` row)."""

    nas_id: int
    site_id: int
    name: str
    state: str
    since: datetime
    failures: int = 0
    first_failure_at: datetime | None = None
    last_probe_at: datetime | None = None
    last_ok_at: datetime | None = None
    latency_ms: float | None = None
    detail: str | None = None
    period: str | None = None  # the state of the open history period (a failing NAS's is still up)
    new: bool = False          # no row yet

    def row(self) -> dict:
        """The node_state columns."""
        return {k: getattr(self, k) for k in COLUMNS}


# What the monitor writes; `notified` belongs to the alerts (portal/core/alerts.py) and is never overwritten here.
COLUMNS = ("nas_id", "state", "since", "failures", "first_failure_at", "last_probe_at", "last_ok_at", "latency_ms",
           "detail", "period")


@dataclass(frozen=True)
class Transition:
    """The period open for a NAS ends at `at`; a new one of `state` begins then (None: none begins)."""

    nas_id: int
    site_id: int
    name: str
    state: str | None
    at: datetime


@dataclass
class Drained:
    """What changed since the last drain: node rows to write, transitions in order, NAS removed."""

    nodes: list[Node]
    transitions: list[Transition]
    removed: list[int]


class Tracker:
    """Every NAS's state; `observe` a result, `drain` what to write, `restore` it when writing failed."""

    def __init__(self, confirmations: int) -> None:
        self.confirmations = confirmations
        self.nodes: dict[int, Node] = {}
        self.dirty: set[int] = set()
        self.transitions: list[Transition] = []
        self.removed: list[int] = []

    def load(self, nodes: list[Node], now: datetime, gap: timedelta) -> None:
        """Take the saved states; a NAS not probed for longer than `gap` (the monitor was away) has its
        open period closed at its last probe and starts again as pending."""
        for node in nodes:
            self.nodes[node.nas_id] = node
            last = node.last_probe_at or node.since
            if node.state not in ("unprobed", "pending") and now - last > gap:
                self._move(node, "pending", last, event_state=None)
                node.failures, node.first_failure_at = 0, None

    def add(self, nas_id: int, site_id: int, name: str, probed: bool, now: datetime) -> None:
        """A NAS the monitor has not seen before."""
        node = Node(nas_id, site_id, name, "pending", now, new=True)
        self.nodes[nas_id] = node
        self.dirty.add(nas_id)
        if not probed:
            self._move(node, "unprobed", now, "unprobed")

    def update(self, nas_id: int, site_id: int, name: str, probed: bool, now: datetime) -> None:
        """The NAS's site, name or probe may have changed."""
        node = self.nodes[nas_id]
        if (node.site_id, node.name) != (site_id, name):
            node.site_id, node.name = site_id, name
            self.dirty.add(nas_id)
        if not probed and node.state != "unprobed":
            self._move(node, "unprobed", now, "unprobed")
        elif probed and node.state == "unprobed":
            self._move(node, "pending", now, None)

    def remove(self, nas_id: int, now: datetime) -> None:
        """The NAS is gone: its open period ends now."""
        node = self.nodes.pop(nas_id)
        self.transitions.append(Transition(nas_id, node.site_id, node.name, None, now))
        self.dirty.discard(nas_id)
        self.removed.append(nas_id)

    def observe(self, nas_id: int, ok: bool, at: datetime, latency_ms: float | None = None,
                detail: str | None = None) -> None:
        """One probe result taken at `at`."""
        node = self.nodes.get(nas_id)
        if node is None or node.state == "unprobed":
            return
        node.last_probe_at, node.detail = at, None if ok else detail
        self.dirty.add(nas_id)
        if ok:
            node.last_ok_at, node.latency_ms = at, latency_ms
            node.failures, node.first_failure_at = 0, None
            if node.state == "failing" and node.period == "up":
                node.state = "up"          # failures short of confirmation: the up period goes on
            elif node.state != "up":
                self._move(node, "up", at, "up")
            return
        node.failures += 1
        node.first_failure_at = node.first_failure_at or at
        if node.state == "down":
            return
        if node.failures >= self.confirmations:
            self._move(node, "down", node.first_failure_at, "down")
        elif node.state in ("up", "pending"):
            node.state = "failing"

    def _move(self, node: Node, state: str, at: datetime, event_state: str | None) -> None:
        node.state, node.since, node.period = state, at, event_state
        self.dirty.add(node.nas_id)
        self.transitions.append(Transition(node.nas_id, node.site_id, node.name, event_state, at))

    def drain(self) -> Drained:
        """Copies of the changed nodes, the transitions and removals since the last drain."""
        out = Drained([replace(self.nodes[i]) for i in sorted(self.dirty) if i in self.nodes],
                      self.transitions, self.removed)
        for node in self.nodes.values():
            node.new = node.new and node.nas_id not in self.dirty
        self.dirty, self.transitions, self.removed = set(), [], []
        return out

    def restore(self, drained: Drained) -> None:
        """Writing `drained` failed: keep it for the next attempt, ahead of what came since."""
        self.dirty |= {n.nas_id for n in drained.nodes if n.nas_id in self.nodes}
        for node in drained.nodes:
            if node.new and node.nas_id in self.nodes:
                self.nodes[node.nas_id].new = True
        self.transitions = drained.transitions + self.transitions
        self.removed = drained.removed + self.removed
