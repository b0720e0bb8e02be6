"""The cluster page: the scheduler nodes, which leads and in which term, heartbeat ages (stale flagged), each
node's clock offset from the database and whether it refuses to lead for it; for whoever may view the nodes."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from console.cluster import offset_text
from scheduling.models import LeaderTerm, SchedulerInstance

CLUSTER = reverse("admin:cluster")
REFUSAL = "its clock is 30.004 s ahead of the database's (±0.001 s), beyond SCHEDULER_MAX_CLOCK_OFFSET (2 s)"


def row_of(page: str, instance_id: str) -> str:
    match = re.search(rf'<tr id="node-{instance_id}".*?</tr>', page, re.S)
    assert match, f"no row for {instance_id}"
    return match.group(0)


def node(instance_id: str, *, heartbeat_ago=timedelta(seconds=2), **fields) -> SchedulerInstance:
    instance = SchedulerInstance.objects.create(instance_id=instance_id, host=f"{instance_id}.lan", **fields)
    SchedulerInstance.objects.filter(pk=instance.pk).update(updated_at=timezone.now() - heartbeat_ago)
    return instance


@pytest.fixture
def page(admin_client, db):
    def get() -> str:
        response = admin_client.get(CLUSTER)
        assert response.status_code == 200
        return response.content.decode()

    return get


def test_the_leader_its_term_and_each_nodes_offset(page):
    node("node-a", port=9100, is_leader=True, leader_since=timezone.now() - timedelta(hours=1), leader_term=7,
         clock_offset_seconds=0.0123)
    node("node-b", leader_term=6, clock_offset_seconds=-0.2)
    node("node-c")
    LeaderTerm.objects.create(name="scheduler_leader_test", term=7, holder="node-a", started_at=timezone.now())
    html = page()
    assert re.search(r'id="card-leader">.*node-a.*term 7 · on node-a\.lan:9100', html, re.S)
    leader = row_of(html, "node-a")
    assert "badge-leader" in leader and ">7<" in leader and "0.012 s behind the database" in leader
    assert "0.200 s ahead of the database" in row_of(html, "node-b")
    assert "badge-follower" in row_of(html, "node-b") and "6, earlier" in row_of(html, "node-b")
    assert "not measured" in row_of(html, "node-c")
    assert "refuses to lead" not in html.split('id="cluster-terms"')[0].split('id="cluster-nodes"')[1]
    assert "scheduler_leader_test" in html


def test_a_stale_heartbeat_is_flagged_and_a_stale_leader_is_no_leader(page):
    node("gone", is_leader=True, leader_term=3, heartbeat_ago=timedelta(hours=3))
    node("alive")
    html = page()
    gone = row_of(html, "gone")
    assert "stale leader" in gone and "badge-stale heartbeat" in gone and "3 h ago" in gone
    assert "badge-fresh heartbeat" in row_of(html, "alive")
    assert "No leader" in html and "1 with a stale heartbeat" in html


def test_a_node_refused_for_its_clock_is_flagged_with_the_reason(page, settings):
    settings.SCHEDULER = {**settings.SCHEDULER, "MAX_CLOCK_OFFSET_SECONDS": 2.0}
    node("skewed", clock_offset_seconds=-30.004, leadership_refusal=REFUSAL)
    node("sound", clock_offset_seconds=0.001)
    html = page()
    skewed = row_of(html, "skewed")
    assert "refuses to lead" in skewed and "offset-over" in skewed
    assert "30.004 s ahead of the database" in skewed and "beyond SCHEDULER_MAX_CLOCK_OFFSET (2 s)" in skewed
    assert "refuses to lead" not in row_of(html, "sound") and "offset-over" not in row_of(html, "sound")
    assert re.search(r'id="card-clocks">\s*<h3>Clocks</h3>\s*<p class="console-big">1 refused', html)


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "not measured"), (0.0001, "in step with the database"), (0.25, "0.250 s behind the database"),
    (-30.0049, "30.005 s ahead of the database"),
])
def test_offset_in_words(seconds, text):
    assert offset_text(seconds) == text


def test_queries_do_not_grow_with_nodes(queries_for, db):
    node("first", is_leader=True, leader_term=1)
    few = queries_for(CLUSTER)
    for index in range(10):
        node(f"more-{index}", clock_offset_seconds=0.01 * index)
    assert queries_for(CLUSTER) == few


def test_a_viewer_of_nodes_sees_the_page_and_its_link_others_do_not(client, db):
    viewer = get_user_model().objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_schedulerinstance"))
    client.force_login(viewer)
    response = client.get(CLUSTER)
    assert response.status_code == 200 and 'id="nav-cluster"' in response.content.decode()
    client.force_login(get_user_model().objects.create_user("stranger", password="x", is_staff=True))
    assert client.get(CLUSTER).status_code == 403
    assert 'id="nav-cluster"' not in client.get(reverse("admin:index")).content.decode()
    client.logout()
    assert "/login/" in client.get(CLUSTER)["Location"]
