"""The scheduler nodes as the console shows them (the dashboard's cluster table and the cluster page): which
node leads and in which term, each node's heartbeat age (stale past SCHEDULER_INSTANCE_STALE_SECONDS), its
clock's offset from the database's as it last measured it, and whether it refuses to lead because that offset
is beyond SCHEDULER_MAX_CLOCK_OFFSET (``scheduling.clock_sync``; the node writes its refusal on its row).

Read through ``monitoring.selectors`` in two queries (the nodes, the fencing terms) whatever the cluster's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from console.display import age_text
from monitoring.selectors import leadership_terms, scheduler_nodes
from scheduler_project.config import tunable
from scheduling.models import SchedulerInstance

# An offset under this is shown as "in step" (the measurement's own error is about a millisecond on a LAN).
IN_STEP_SECONDS = 0.0005


@dataclass(frozen=True)
class InstanceRow:
    instance_id: str
    host: str
    port: int | None
    address: str
    is_leader: bool
    leader_since: datetime | None
    leader_term: int | None
    heartbeat_at: datetime
    heartbeat_age_seconds: float
    heartbeat_age: str
    fresh: bool
    clock_offset_seconds: float | None
    clock_offset: str
    offset_over_limit: bool
    refusal: str

    @property
    def role(self) -> str:
        """"leader", "stale leader" (flagged leader, heartbeat stale: it died holding the flag) or "follower"."""
        if self.is_leader:
            return "leader" if self.fresh else "stale leader"
        return "follower"


def offset_text(seconds: float | None) -> str:
    """The database's clock minus the node's, in words: '0.012 s behind the database', '30.004 s ahead of the
    database', 'in step with the database', or 'not measured' (SQLite has no server clock; or not yet)."""
    if seconds is None:
        return "not measured"
    if abs(seconds) < IN_STEP_SECONDS:
        return "in step with the database"
    # A positive offset: the database's clock reads later than the node's, the node is behind it.
    return f"{abs(seconds):.3f} s {'behind' if seconds > 0 else 'ahead of'} the database"


def instance_rows(instances: list[SchedulerInstance], now: datetime) -> list[InstanceRow]:
    stale_after = tunable("INSTANCE_STALE_SECONDS")
    limit = tunable("MAX_CLOCK_OFFSET_SECONDS")
    rows = []
    for instance in instances:
        age = max((now - instance.updated_at).total_seconds(), 0.0)
        offset = instance.clock_offset_seconds
        rows.append(InstanceRow(
            instance_id=instance.instance_id, host=instance.host, port=instance.port,
            address=f"{instance.host}:{instance.port}" if instance.port else instance.host,
            is_leader=instance.is_leader, leader_since=instance.leader_since, leader_term=instance.leader_term,
            heartbeat_at=instance.updated_at, heartbeat_age_seconds=age,
            heartbeat_age=age_text(instance.updated_at, now),
            fresh=age <= stale_after, clock_offset_seconds=offset, clock_offset=offset_text(offset),
            offset_over_limit=offset is not None and abs(offset) > limit, refusal=instance.leadership_refusal,
        ))
    return rows


def cluster(now: datetime) -> dict:
    """Everything the cluster page renders."""
    rows = instance_rows(scheduler_nodes(), now)
    leaders = [row for row in rows if row.is_leader and row.fresh]
    return {
        "now": now,
        "nodes": rows,
        # One at a time (a new leader clears the others' flags); the latest term wins a moment's overlap.
        "leader": max(leaders, key=lambda row: (row.leader_term or 0, row.heartbeat_at)) if leaders else None,
        "terms": leadership_terms(),
        "stale_after": tunable("INSTANCE_STALE_SECONDS"),
        "max_offset": tunable("MAX_CLOCK_OFFSET_SECONDS"),
        "refused": sum(1 for row in rows if row.refusal),
        "stale": sum(1 for row in rows if not row.fresh),
    }
