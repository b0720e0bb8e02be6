"""The console's workflows: the DAG as SVG (coloured by node state in a run), the editor's inlines checked by
the services (a cycle is not saved), the run list and page, and links from node executions to their run."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from django.utils import timezone

from console.charts import STATUS_COLOURS
from console.dag import DagNode, dag_svg, layout
from core.workflows import Edge
from executions.services import finish
from tests.console.conftest import messages_of, url
from workflows.models import Workflow, WorkflowEdge
from workflows.services import workflow_create, workflow_trigger

SVG = "{http://www.w3.org/2000/svg}"


def parse_svg(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # noqa: S314 - our own output


def test_layout_puts_each_node_one_column_right_of_its_deepest_parent():
    nodes = [DagNode(name) for name in "abcd"]
    places = layout(nodes, [Edge("a", "b"), Edge("a", "c"), Edge("b", "d"), Edge("c", "d"), Edge("a", "d")])
    assert places == {"a": (0, 0), "b": (1, 0), "c": (1, 1), "d": (2, 0)}


def test_dag_svg_colours_nodes_by_status_links_them_and_escapes_text():
    svg = parse_svg(dag_svg([DagNode("<x>", "task & co", "failed", "/exec/1"), DagNode("y", status="")],
                            [Edge("<x>", "y", "on_failure")]))
    groups = list(svg.iter(f"{SVG}g"))
    assert [g.get("data-status") for g in groups] == ["failed", "waiting"]
    rect = groups[0].find(f"{SVG}rect")
    assert rect.get("fill") == STATUS_COLOURS["failed"]
    assert any(a.get("href") == "/exec/1" for a in svg.iter(f"{SVG}a"))
    assert len(list(svg.iter(f"{SVG}path"))) == 2  # the arrowhead marker and one edge


@pytest.fixture
def chain(make_task):
    a, b = make_task(name="extract", max_retry=0), make_task(name="load")
    return workflow_create(data={"name": "nightly"}, now=timezone.now(),
                           nodes=[{"name": "a", "task_id": a.pk}, {"name": "b", "task_id": b.pk}],
                           edges=[{"parent": "a", "child": "b"}])


def test_workflow_page_draws_the_graph(admin_client, chain):
    response = admin_client.get(url("workflows_workflow_change", chain.pk))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'class="console-dag"' in body and 'data-node="a"' in body and "extract" in body


def _change_form(workflow: Workflow, extra_edges: list[tuple[str, str]]) -> dict:
    nodes = list(workflow.nodes.all())
    edges = list(workflow.edges.all())
    data = {"name": workflow.name, "description": "", "status": workflow.status, "schedule_type": "",
            "cron_expression": "", "timezone": "UTC", "misfire_policy": "fire_once", "overlap_policy": "parallel",
            "parameters": "{}", "max_parallel_nodes": "",
            "nodes-TOTAL_FORMS": len(nodes), "nodes-INITIAL_FORMS": len(nodes), "nodes-MIN_NUM_FORMS": 0,
            "nodes-MAX_NUM_FORMS": 1000,
            "edges-TOTAL_FORMS": len(edges) + len(extra_edges), "edges-INITIAL_FORMS": len(edges),
            "edges-MIN_NUM_FORMS": 0, "edges-MAX_NUM_FORMS": 1000}
    for i, node in enumerate(nodes):
        data |= {f"nodes-{i}-id": node.pk, f"nodes-{i}-workflow": workflow.pk, f"nodes-{i}-name": node.name,
                 f"nodes-{i}-task": node.task_id, f"nodes-{i}-parameters": "{}", f"nodes-{i}-position": i}
    by_name = {node.name: node.pk for node in nodes}
    pairs = [(e.parent_id, e.child_id, e.pk, e.condition) for e in edges]
    pairs += [(by_name[p], by_name[c], "", "on_success") for p, c in extra_edges]
    for i, (parent, child, pk, condition) in enumerate(pairs):
        data |= {f"edges-{i}-id": pk, f"edges-{i}-workflow": workflow.pk, f"edges-{i}-parent": parent,
                 f"edges-{i}-child": child, f"edges-{i}-condition": condition}
    return data


def test_editor_refuses_a_cycle_and_saves_nothing(admin_client, chain):
    response = admin_client.post(url("workflows_workflow_change", chain.pk), _change_form(chain, [("b", "a")]),
                                 follow=True)
    assert any("cycle" in message for message in messages_of(response)), messages_of(response)
    assert WorkflowEdge.objects.filter(workflow=chain).count() == 1


def test_editor_saves_a_valid_edit(admin_client, chain, make_task):
    data = _change_form(chain, [])
    data["edges-0-condition"] = "always"
    response = admin_client.post(url("workflows_workflow_change", chain.pk), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert chain.edges.get().condition == "always"


def test_run_page_colours_nodes_and_node_executions_link_to_their_run(admin_client, chain):
    run = workflow_trigger(workflow_id=chain.pk, parameters=None, now=timezone.now())
    first = run.node_executions.get()
    finish(first, "failed", now=timezone.now())
    page = admin_client.get(url("workflows_workflowrun_change", run.pk)).content.decode()
    assert 'data-node="a" data-status="failed"' in page and 'data-node="b" data-status="skipped"' in page
    assert url("executions_taskexecution_change", first.pk) in page
    listing = admin_client.get(url("workflows_workflowrun_changelist")).content.decode()
    assert run.pk[:8] in listing
    execution_page = admin_client.get(url("executions_taskexecution_change", first.pk)).content.decode()
    assert url("workflows_workflowrun_change", run.pk) in execution_page


def test_cancel_action_cancels_a_running_run(admin_client, chain):
    run = workflow_trigger(workflow_id=chain.pk, parameters=None, now=timezone.now())
    response = admin_client.post(url("workflows_workflowrun_changelist"),
                                 {"action": "cancel_selected", "_selected_action": [run.pk]}, follow=True)
    assert any("Cancelled 1" in message for message in messages_of(response))
    run.refresh_from_db()
    assert run.status == "cancelled"
