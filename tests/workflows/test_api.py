"""/api/v1/workflows and /api/v1/workflow-runs: the envelope, the spec's error body with the 5xxxx codes."""

from __future__ import annotations

import pytest

from executions.models import TaskExecution
from tests.helpers import assert_error, assert_ok
from workflows.models import Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def tasks(make_task):
    return {name: make_task(name=name, max_retry=0) for name in ("extract", "transform", "load", "report")}


def body(tasks, edges, **extra):
    return {"name": "etl", "nodes": [{"name": name, "task_id": task.pk} for name, task in tasks.items()],
            "edges": [{"parent": p, "child": c, **({"condition": cond} if cond else {})} for p, c, cond in edges],
            **extra}


ETL = [("extract", "transform", None), ("transform", "load", None), ("load", "report", "always")]


def test_create_read_update_and_list(api, tasks):
    created = assert_ok(*api.post("/api/v1/workflows", body(tasks, ETL, cron_expression="0 0 2 * * *",
                                                               schedule_type="cron")),
                        http_status=201, message="工作流创建成功")
    assert [n["name"] for n in created["nodes"]] == list(tasks)
    assert {"parent": "load", "child": "report", "condition": "always"} in created["edges"]
    assert created["next_run_time"] is not None
    updated = assert_ok(*api.put(f"/api/v1/workflows/{created['id']}", {"max_parallel_nodes": 2}),
                        message="工作流更新成功")
    assert updated["max_parallel_nodes"] == 2 and len(updated["edges"]) == 3
    listed = assert_ok(*api.get("/api/v1/workflows"))
    assert [w["id"] for w in listed] == [created["id"]]


@pytest.mark.parametrize(("edges", "code"), [
    ([("extract", "transform", None), ("transform", "extract", None)], 50003),
    ([("extract", "nowhere", None)], 50006),
    ([("extract", "transform", None), ("extract", "load", "on_failure"), ("transform", "report", None),
      ("load", "report", None)], 50005),
])
def test_graphs_that_cannot_run_are_refused_with_their_code_and_nothing_is_written(api, tasks, edges, code):
    status, error = api.post("/api/v1/workflows", body(tasks, edges))
    assert_error(status, error, 400, code)
    assert not Workflow.objects.exists()


def test_a_node_on_a_deleted_task_is_refused(api, tasks):
    tasks["load"].status = "deleted"
    tasks["load"].save()
    status, error = api.post("/api/v1/workflows", body(tasks, ETL))
    assert_error(status, error, 400, 50004)
    assert error["details"]["node"] == "load"


def test_a_taken_name_is_a_conflict(api, tasks):
    api.post("/api/v1/workflows", body(tasks, ETL))
    assert_error(*api.post("/api/v1/workflows", body(tasks, ETL)), 409, 50002)


def test_trigger_run_detail_cancel_and_rerun(api, tasks):
    workflow = assert_ok(*api.post("/api/v1/workflows", body(tasks, ETL)), http_status=201, message="工作流创建成功")
    run = assert_ok(*api.post(f"/api/v1/workflows/{workflow['id']}/trigger", {"parameters": {"day": "d1"}}),
                    message="工作流触发成功")
    assert run["status"] == "running" and run["trigger_type"] == "manual"
    detail = assert_ok(*api.get(f"/api/v1/workflow-runs/{run['id']}"))
    assert [(n["name"], n["state"]) for n in detail["nodes"]] == [
        ("extract", "active"), ("transform", "waiting"), ("load", "waiting"), ("report", "waiting")]
    execution = TaskExecution.objects.get(pk=detail["nodes"][0]["execution_id"])
    assert execution.parameters == {"day": "d1"}
    assert_error(*api.post(f"/api/v1/workflow-runs/{run['id']}/rerun"), 409, 50008)
    cancelled = assert_ok(*api.post(f"/api/v1/workflow-runs/{run['id']}/cancel"), message="工作流运行已取消")
    assert cancelled["status"] == "cancelled"
    runs = assert_ok(*api.get(f"/api/v1/workflows/{workflow['id']}/runs", params={"status": "cancelled"}))
    assert [r["id"] for r in runs] == [run["id"]]


def test_unknown_ids_answer_their_not_found_codes(api):
    assert_error(*api.get("/api/v1/workflows/nope"), 404, 50001)
    assert_error(*api.post("/api/v1/workflows/nope/trigger"), 404, 50001)
    assert_error(*api.get("/api/v1/workflow-runs/nope"), 404, 50007)
    assert_error(*api.post("/api/v1/workflow-runs/nope/cancel"), 404, 50007)


def test_a_viewer_reads_an_operator_triggers_only_an_admin_edits(api, api_as, tasks):
    workflow = assert_ok(*api.post("/api/v1/workflows", body(tasks, ETL)), http_status=201, message="工作流创建成功")
    viewer, operator = api_as("viewer"), api_as("operator")
    assert viewer.get(f"/api/v1/workflows/{workflow['id']}")[0] == 200
    assert viewer.post(f"/api/v1/workflows/{workflow['id']}/trigger")[0] == 403
    assert operator.post(f"/api/v1/workflows/{workflow['id']}/trigger")[0] == 200
    assert operator.put(f"/api/v1/workflows/{workflow['id']}", {"description": "x"})[0] == 403


def test_a_chain_is_a_workflow_that_takes_over_the_first_tasks_schedule(api, make_task):
    first = make_task(name="nightly export", cron_expression="0 0 2 * * *")
    first.next_run_time = first.schedule().next_after(first.created_at)
    first.save()
    then = make_task(name="notify")
    chain = assert_ok(*api.post("/api/v1/workflows/chain", {"task_ids": [first.pk, then.pk]}), http_status=201,
                      message="工作流创建成功")
    assert [n["name"] for n in chain["nodes"]] == ["1.nightly_export", "2.notify"]
    assert chain["edges"] == [{"parent": "1.nightly_export", "child": "2.notify", "condition": "on_success"}]
    assert chain["cron_expression"] == "0 0 2 * * *" and chain["next_run_time"] is not None
    first.refresh_from_db()
    assert first.status == "paused"
    assert_error(*api.post("/api/v1/workflows/chain", {"task_ids": [then.pk, "nope"]}), 400, 50004)


def test_updating_only_the_nodes_keeps_the_edges_and_checks_them(api, tasks):
    workflow = assert_ok(*api.post("/api/v1/workflows", body(tasks, ETL)), http_status=201, message="工作流创建成功")
    nodes = [{"name": name, "task_id": task.pk} for name, task in tasks.items()]
    updated = assert_ok(*api.put(f"/api/v1/workflows/{workflow['id']}", {"nodes": nodes}), message="工作流更新成功")
    assert len(updated["edges"]) == 3
    status, error = api.put(f"/api/v1/workflows/{workflow['id']}", {"nodes": nodes[:2]})  # edges to "load" dangle
    assert_error(status, error, 400, 50006)
    assert len(assert_ok(*api.get(f"/api/v1/workflows/{workflow['id']}"))["nodes"]) == 4


def test_an_execution_of_a_node_shows_its_run(api, tasks):
    workflow = assert_ok(*api.post("/api/v1/workflows", body(tasks, ETL)), http_status=201, message="工作流创建成功")
    run = assert_ok(*api.post(f"/api/v1/workflows/{workflow['id']}/trigger"), message="工作流触发成功")
    execution = TaskExecution.objects.get(workflow_run_id=run["id"])
    assert assert_ok(*api.get(f"/api/v1/executions/{execution.pk}"))["workflow_run_id"] == run["id"]
