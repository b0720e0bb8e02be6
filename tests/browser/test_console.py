"""The operators' console in a real browser: Debian's headless Chromium driven by Playwright against a live
server. An operator logs in, creates a task (watching the schedule preview), triggers it with parameters,
finds the execution in the history, pauses the task, and reads the dashboard and the task's statistics; then
the timeline, a live log tail, the executors and cluster pages, and the workflow editor. Screenshots of each
step go to ``test-output/screenshots/``.

Needs ``/usr/bin/chromium`` (``scripts/browser-deps.sh`` installs it with apt) and the ``playwright`` package
(requirements-dev.txt); without either the test is skipped with a message saying which. Playwright never
downloads a browser here: it is pointed at the system one.
"""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

import console.site as admin_site
from executions.models import TaskExecution
from executors.models import Executor
from scheduling.models import SchedulerInstance
from tasks.models import Task, TaskExecutor

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(settings.BASE_DIR) / "test-output" / "screenshots"
USERNAME, PASSWORD = "operator", "console-pass-7f3k"

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright's Python package is not installed: pip install -r requirements-dev.txt"
)
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/browser-deps.sh (apt-get install chromium) "
                f"or set CHROMIUM_PATH", allow_module_level=True)

expect = sync_api.expect


@pytest.fixture
def history(transactional_db):
    """A cluster with some past: a leader, an executor, and a day of runs of another task."""
    now = timezone.now()
    get_user_model().objects.create_superuser(USERNAME, "operator@example.com", PASSWORD)
    SchedulerInstance.objects.create(instance_id="scheduler-1", host="10.0.0.5", port=8000, is_leader=True,
                                     leader_since=now - timedelta(hours=6))
    executor = Executor.objects.create(name="reports", instance_id="reports-1", base_url="http://127.0.0.1:1")
    nightly = Task.objects.create(name="nightly-report", cron_expression="0 */20 * * * *")
    TaskExecutor.objects.create(task=nightly, executor=executor)
    for index in range(70):
        status = "failed" if index % 9 == 4 else "timeout" if index % 13 == 6 else "success"
        TaskExecution.objects.create(task=nightly, executor=executor, status=status, duration_ms=900 + index * 37,
                                     scheduled_time=now - timedelta(minutes=20 * index + 1))
    return executor


@pytest.fixture
def page(live_server, history, monkeypatch, tmp_path):
    # Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a thread with a
    # running loop unless told that they are synchronous here (they are).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    monkeypatch.setattr(admin_site, "REFRESH_SECONDS", 2)  # the dashboard refreshes within the test's patience
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 1000},
        )
        context.set_default_timeout(10_000)
        browser_page = context.pages[0] if context.pages else context.new_page()
        # The console's Content-Security-Policy must not block anything the console itself needs.
        browser_page.csp_violations = []
        browser_page.on("console", lambda message: browser_page.csp_violations.append(message.text)
                        if "Content Security Policy" in message.text else None)
        try:
            yield browser_page
        finally:
            context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def select_and_run(page, task_name: str, action: str) -> None:
    """On the task list, tick ``task_name``'s row and run ``action``."""
    row = page.locator("#result_list tbody tr", has_text=task_name)
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def test_operator_journey(page, live_server):
    base = live_server.url

    # Log in.
    page.goto(f"{base}/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    shot(page, "01-login")
    page.click("input[type=submit]")
    expect(page.locator("#console-dashboard")).to_be_visible()

    # Create a task; the schedule preview follows what is typed.
    page.goto(f"{base}/admin/tasks/task/add/")
    page.fill("#id_name", "browser-sync")
    page.fill("#id_cron_expression", "*/30 * * * * *")
    expect(page.locator("#schedule-preview")).to_contain_text("Every 30 seconds")
    expect(page.locator("#schedule-preview li")).to_have_count(5)
    expect(page.locator(".form-row.field-interval_seconds")).to_be_hidden()  # not used by cron tasks
    page.fill("#id_parameters", json.dumps({"source": "warehouse"}))
    shot(page, "02-task-add")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    row = page.locator("#result_list tbody tr", has_text="browser-sync")
    expect(row).to_contain_text("Every 30 seconds")
    expect(row.locator(".console-badge").first).to_have_text("Active")
    shot(page, "03-task-list")

    # Trigger it now with extra parameters.
    select_and_run(page, "browser-sync", "trigger_now")
    expect(page.locator("h1")).to_have_text("Trigger now")
    page.fill("#id_parameters", json.dumps({"mode": "full"}))
    shot(page, "04-trigger-form")
    page.click("#console-action-form input[type=submit]")
    expect(page.locator(".messagelist")).to_contain_text("Triggered 1 task: browser-sync")

    # The run appears in the execution history, pending until a scheduler dispatches it.
    page.click("text=See the triggered executions")
    run_row = page.locator("#result_list tbody tr", has_text="browser-sync")
    expect(run_row).to_have_count(1)
    expect(run_row).to_contain_text("Pending")
    expect(run_row).to_contain_text("manual")
    shot(page, "05-executions")
    run_row.locator("th a, td a").first.click()
    expect(page.locator(".field-parameters_pretty")).to_contain_text('"mode": "full"')
    expect(page.locator(".field-parameters_pretty")).to_contain_text('"source": "warehouse"')
    shot(page, "06-execution-detail")

    # Pause it.
    page.goto(f"{base}/admin/tasks/task/")
    select_and_run(page, "browser-sync", "pause")
    expect(page.locator(".messagelist")).to_contain_text("Paused 1 task: browser-sync")
    row = page.locator("#result_list tbody tr", has_text="browser-sync")
    expect(row.locator(".console-badge").first).to_have_text("Paused")
    shot(page, "07-task-paused")
    assert Task.objects.get(name="browser-sync").status == "paused"

    # The dashboard: cluster, counts, the hourly chart, and it refreshes itself in place.
    page.goto(f"{base}/admin/")
    expect(page.locator("#card-leader")).to_contain_text("scheduler-1")
    expect(page.locator("#card-running")).to_contain_text("1 pending")
    expect(page.locator("#chart-hourly svg rect").first).to_be_visible()
    expect(page.locator("#failing-tasks")).to_contain_text("nightly-report")
    with page.expect_response(lambda response: "/admin/dashboard/panel/" in response.url and response.ok):
        pass
    expect(page.locator("#console-dashboard")).not_to_have_class(re.compile("stale"))
    shot(page, "08-dashboard")

    # The statistics of the task with history.
    nightly = Task.objects.get(name="nightly-report")
    page.goto(f"{base}/admin/tasks/task/{nightly.pk}/stats/")
    expect(page.locator("#chart-daily svg")).to_be_visible()
    expect(page.locator("#stat-24h")).to_contain_text("%")
    shot(page, "09-task-stats")

    # Deleting asks first (data-confirm, console/confirm.js: no inline handlers under the CSP); dismissed,
    # nothing is deleted.
    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.goto(f"{base}/admin/tasks/task/{nightly.pk}/change/")
    page.click("#tool-delete")
    assert questions and questions[0].startswith("Delete this task?")
    assert Task.objects.get(pk=nightly.pk).status != "deleted"
    assert page.csp_violations == []

    for name in ("01-login", "02-task-add", "03-task-list", "04-trigger-form", "05-executions",
                 "06-execution-detail", "07-task-paused", "08-dashboard", "09-task-stats"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000, name


def log_in(page, base: str) -> None:
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#console-dashboard")).to_be_visible()


def test_timeline_and_live_log_tail(page, live_server, history):
    from executions import services

    base = live_server.url
    log_in(page, base)

    # The timeline: the task with history has a lane of bars; a bar opens its execution.
    page.click("#nav-timeline")
    expect(page.locator("h1")).to_have_text("Timeline")
    page.click("#zoom-24h")
    expect(page.locator("#zoom-24h")).to_have_class(re.compile("default"))
    expect(page.locator("#timeline-chart svg")).to_contain_text("nightly-report")
    expect(page.locator("#timeline-chart .timeline-now")).to_have_count(1)
    assert page.locator("#timeline-chart .timeline-bar").count() > 10
    shot(page, "10-timeline")
    page.locator("#timeline-chart a").nth(10).click()
    expect(page.locator(".field-task_link")).to_contain_text("nightly-report")

    # A running execution's page follows new lines and progress without a reload, and stops when it ends.
    nightly = Task.objects.get(name="nightly-report")
    running = TaskExecution.objects.create(task=nightly, executor=history, status="running",
                                           scheduled_time=timezone.now(), start_time=timezone.now(),
                                           logs="started")
    page.goto(f"{base}/admin/executions/taskexecution/{running.pk}/change/")
    expect(page.locator("#live-logs")).to_have_text("started")
    services.append_logs(execution_id=running.pk, lines=["copied 500 rows", "copied 1000 rows"],
                         now=timezone.now())
    services.report_progress(execution_id=running.pk, percent=60, step="copying", now=timezone.now())
    expect(page.locator("#live-logs")).to_contain_text("copied 1000 rows")
    expect(page.locator("#live-step")).to_have_text("copying")
    shot(page, "11-live-tail")
    services.apply_callback(execution_id=running.pk, status="success", result={"rows": 1000}, logs="done",
                            end_time=None, now=timezone.now())
    expect(page.locator("#live-tail-state")).to_contain_text("the run ended: success")
    expect(page.locator("#live-logs")).to_contain_text("done")
    for name in ("10-timeline", "11-live-tail"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000, name


def test_executors_at_a_glance_and_cluster(page, live_server, history):
    from scheduling.models import LeaderTerm

    base = live_server.url
    now = timezone.now()
    Executor.objects.filter(pk=history.pk).update(last_health_check=now - timedelta(seconds=12))
    nightly = Task.objects.get(name="nightly-report")
    for minutes, lease in ((3, 9), (8, -45)):  # one lease renewed, one run out (not settled yet)
        TaskExecution.objects.create(task=nightly, executor=history, status="running", attempt=1,
                                     scheduled_time=now - timedelta(minutes=minutes, seconds=30),
                                     start_time=now - timedelta(minutes=minutes),
                                     lease_until=now + timedelta(seconds=lease))
    TaskExecution.objects.create(task=nightly, executor=history, status="failed", ended_by_scheduler=True,
                                 scheduled_time=now - timedelta(minutes=95), logs="lost: the lease ran out")
    Executor.objects.create(name="etl", instance_id="etl-1", base_url="http://127.0.0.1:2", is_healthy=False,
                            health_check_failures=4, last_health_check=now - timedelta(minutes=14))
    Executor.objects.create(name="spare", instance_id="spare-1", base_url="http://127.0.0.1:3", status="maintenance",
                            status_reason="kernel upgrade")
    SchedulerInstance.objects.filter(instance_id="scheduler-1").update(leader_term=12, clock_offset_seconds=0.0042)
    SchedulerInstance.objects.create(instance_id="scheduler-2", host="10.0.0.6", port=8000, leader_term=11,
                                     clock_offset_seconds=-0.0131)
    SchedulerInstance.objects.create(instance_id="scheduler-3", host="10.0.0.7", port=8000,
                                     clock_offset_seconds=-31.2, leadership_refusal=(
                                         "its clock is 31.200 s ahead of the database's (±0.001 s), beyond "
                                         "SCHEDULER_MAX_CLOCK_OFFSET (2 s)"))
    gone = SchedulerInstance.objects.create(instance_id="scheduler-4", host="10.0.0.8", port=8000)
    SchedulerInstance.objects.filter(pk=gone.pk).update(updated_at=now - timedelta(minutes=40))
    LeaderTerm.objects.create(name="scheduler_leader_lock", term=12, holder="scheduler-1",
                              started_at=now - timedelta(hours=6))
    log_in(page, base)

    # Executors at a glance: running runs and their leases (the run-out one flagged), failures with the lost
    # one apart, health checks, and a sparkline of each executor's last 24 hours.
    page.click("#nav-executors")
    expect(page.locator("h1")).to_have_text("Executors at a glance")
    reports = page.locator("#executor-reports-1")
    expect(reports.locator("td.num").first).to_have_text("2")
    expect(reports.locator(".lease-expired")).to_contain_text("expired")
    expect(reports.locator(".lost-count")).to_have_text("1 lost")
    expect(reports.locator("svg.console-sparkline .sparkline-bar")).to_have_count(24)
    expect(page.locator("#executor-etl-1 .check-stale")).to_contain_text("14 min ago")
    expect(page.locator("#executor-etl-1")).to_contain_text("unhealthy")
    expect(page.locator("#card-leases .console-big")).to_have_text("1")
    shot(page, "15-executors")
    reports.locator("td.num a").first.click()
    expect(page.locator("#result_list tbody tr")).to_have_count(2)

    # The cluster: who leads in which term, heartbeat ages, clock offsets, the node refused for its clock.
    page.click("#nav-cluster")
    expect(page.locator("h1")).to_have_text("Cluster")
    expect(page.locator("#card-leader")).to_contain_text("scheduler-1")
    expect(page.locator("#card-leader")).to_contain_text("term 12")
    expect(page.locator("#node-scheduler-3 .refused")).to_have_text("refuses to lead")
    expect(page.locator("#node-scheduler-3 .offset-over")).to_contain_text("31.200 s ahead of the database")
    expect(page.locator("#node-scheduler-4 .heartbeat")).to_have_class(re.compile("badge-stale"))
    expect(page.locator("#node-scheduler-2")).to_contain_text("0.013 s ahead of the database")
    shot(page, "16-cluster")
    assert page.csp_violations == []
    for name in ("15-executors", "16-cluster"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000, name


def test_workflow_editor_graph_and_run(page, live_server, history):
    from executions.services import finish
    from workflows.models import Workflow, WorkflowRun

    base = live_server.url
    extract = Task.objects.create(name="extract", cron_expression="0 0 * * * *", max_retry=0)
    load = Task.objects.create(name="load", cron_expression="0 0 * * * *")
    log_in(page, base)

    # The editor: nodes first (each a task), saved; then edges between them.
    page.goto(f"{base}/admin/workflows/workflow/add/")
    page.fill("#id_name", "nightly-etl")
    page.fill("#id_nodes-0-name", "extract")
    page.fill("#id_nodes-0-task", str(extract.pk))
    page.locator("#nodes-group .add-row a").click()
    page.fill("#id_nodes-1-name", "load")
    page.fill("#id_nodes-1-task", str(load.pk))
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    page.select_option("#id_edges-0-parent", label="extract")
    page.select_option("#id_edges-0-child", label="load")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    expect(page.locator(".field-graph svg .dag-node")).to_have_count(2)
    expect(page.locator(".field-graph svg .dag-edge")).to_have_count(1)
    shot(page, "12-workflow-editor")

    # A cycle is refused with the reason, and nothing of it is saved.
    page.locator("#edges-group .add-row a").click()
    page.select_option("#id_edges-1-parent", label="load")
    page.select_option("#id_edges-1-child", label="extract")
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("cycle")
    shot(page, "13-workflow-cycle-refused")
    workflow = Workflow.objects.get(name="nightly-etl")
    assert workflow.edges.count() == 1

    # Trigger it; the first node fails; the run's graph shows each node's state and links to its execution.
    page.goto(f"{base}/admin/workflows/workflow/")
    select_and_run(page, "nightly-etl", "trigger_selected")
    expect(page.locator(".messagelist")).to_contain_text("Triggered 1 workflow")
    run = WorkflowRun.objects.get(workflow=workflow)
    first = run.node_executions.get()
    finish(first, "failed", now=timezone.now())
    page.goto(f"{base}/admin/workflows/workflowrun/")
    expect(page.locator("#result_list tbody tr")).to_contain_text("Failed")
    page.locator("#result_list tbody tr a").first.click()
    expect(page.locator('.field-graph_svg [data-node="extract"]')).to_have_attribute("data-status", "failed")
    expect(page.locator('.field-graph_svg [data-node="load"]')).to_have_attribute("data-status", "skipped")
    shot(page, "14-workflow-run")
    page.locator('.field-graph_svg a').first.click()
    expect(page.locator(".field-workflow_run_link")).to_contain_text(run.pk[:8])
    for name in ("12-workflow-editor", "13-workflow-cycle-refused", "14-workflow-run"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000, name
