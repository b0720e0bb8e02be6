"""A node measures its clock's offset from the database's: beyond SCHEDULER_MAX_CLOCK_OFFSET it refuses to
lead (its log, its heartbeat row), a leader whose clock drifts that far steps down, and the engine's clock is
the local one corrected by the offset."""

from datetime import timedelta

import pytest
from django.db import connection

from core.clock_offset import ClockOffset
from scheduling.clock_sync import DatabaseClock
from scheduling.engine import SchedulerNode
from scheduling.models import SchedulerInstance
from tests.scheduling.conftest import T0
from tests.scheduling.test_engine_tick import FakeLock

pytestmark = pytest.mark.django_db(transaction=True)


class SkewedClock:
    """A clock whose measured offset from the database's is set by the test."""

    def __init__(self, offset_seconds: float) -> None:
        self.now = T0
        self.offset = ClockOffset(offset_seconds, 0.001)

    def __call__(self):
        return self.now

    def measure(self) -> ClockOffset:
        return self.offset


@pytest.fixture
def make_node(settings):
    settings.SCHEDULER = {**settings.SCHEDULER, "MAX_CLOCK_OFFSET_SECONDS": 2.0, "HEARTBEAT_INTERVAL_SECONDS": 1.0}
    made = []

    def make(offset_seconds: float) -> SchedulerNode:
        node = SchedulerNode(instance_id=f"node-{len(made)}", host="h", port=1, lock=FakeLock(),
                             clock=SkewedClock(offset_seconds))
        node.register(T0)
        made.append(node)
        return node

    yield make
    for node in made:
        node.dispatcher.shutdown()


def row(node) -> SchedulerInstance:
    return SchedulerInstance.objects.get(instance_id=node.instance_id)


def test_a_node_whose_clock_is_too_far_off_refuses_to_lead_and_says_why(make_node, caplog):
    node = make_node(-30.0)  # its clock is 30 s ahead of the database's

    node.tick(T0)

    assert not node.is_leader and not node.lock.held, "it took the lock"
    why = "its clock is 30.000 s ahead of the database's (±0.001 s), beyond SCHEDULER_MAX_CLOCK_OFFSET (2 s)"
    assert f"scheduler node-0 refuses to lead: {why}" in caplog.text
    assert (row(node).leadership_refusal, row(node).clock_offset_seconds) == (why, -30.0)
    assert not row(node).is_leader


def test_a_node_within_the_limit_leads_and_records_its_offset(make_node):
    node = make_node(1.5)

    node.tick(T0)

    assert node.is_leader
    assert (row(node).leadership_refusal, row(node).clock_offset_seconds, row(node).is_leader) == ("", 1.5, True)


def test_a_leader_whose_clock_drifts_too_far_steps_down_at_its_heartbeat(make_node, caplog):
    node = make_node(0.2)
    node.tick(T0)
    assert node.is_leader

    node.clock.offset = ClockOffset(5.0, 0.001)
    node.clock.now = T0 + timedelta(seconds=2)  # the next heartbeat is due
    node.tick(node.clock.now)

    assert not node.is_leader and not node.lock.held and not row(node).is_leader
    assert "stepped down: its clock is 5.000 s behind the database's" in caplog.text
    node.clock.offset = ClockOffset(0.1, 0.001)  # fixed: it may lead again
    node.clock.now += timedelta(seconds=2)
    node.tick(node.clock.now)
    assert node.is_leader and row(node).leadership_refusal == ""


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has no server clock: nothing to measure")
def test_the_database_clock_measures_a_skewed_local_clock_and_corrects_it():
    ahead = timedelta(seconds=30)
    clock = DatabaseClock(local=lambda: DatabaseClock()() + ahead)  # the real time, 30 s ahead

    offset = clock.measure()

    assert offset.seconds == pytest.approx(-30.0, abs=0.5) and 0 <= offset.error < 0.5
    assert abs((clock() - DatabaseClock()()).total_seconds()) < 0.5


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite case")
def test_on_sqlite_there_is_no_server_clock_and_no_offset():
    clock = DatabaseClock()
    assert clock.measure() is None and clock.offset.seconds == 0.0
