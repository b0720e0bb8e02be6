"""The task list: schedule in words, last run, 24 h success rate, soft-deleted tasks hidden by default,
filters and search, and a constant number of queries whatever the number of rows."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.console.conftest import changelist


def test_list_shows_schedule_in_words_last_run_and_success_rate(admin_client, make_task, run):
    task = make_task(name="nightly-report", cron_expression="0 30 2 * * *", execution_mode="sequential",
                     load_balance_strategy="least_loaded")
    run(task, status="success", minutes_ago=50)
    run(task, status="success", minutes_ago=40)
    run(task, status="success", minutes_ago=30)
    run(task, status="failed", minutes_ago=20)
    run(task, status="success", minutes_ago=60 * 30)  # older than 24 h: not in the rate, not the last run
    page = admin_client.get(changelist("task")).content.decode()
    assert "nightly-report" in page
    assert "0 30 2 * * *" in page and "At 02:30" in page
    assert "Sequential" in page and "Least loaded" in page
    assert "badge-failed" in page  # the last run
    assert "75%" in page and "3 of 4 runs succeeded" in page


def test_a_task_that_never_ran_shows_dashes(admin_client, make_task):
    make_task(name="brand-new")
    response = admin_client.get(changelist("task"))
    row = response.context["cl"].result_list[0]
    assert (row.last_run_status, row.runs_24h, row.successes_24h) == (None, 0, 0)


def test_soft_deleted_tasks_are_hidden_unless_asked_for(admin_client, make_task):
    make_task(name="live")
    make_task(name="gone", status="deleted")
    names = lambda query="": [t.name for t in admin_client.get(changelist("task") + query).context["cl"].result_list]  # noqa: E731
    assert names() == ["live"]
    assert names("?state=deleted") == ["gone"]
    assert sorted(names("?state=all")) == ["gone", "live"]
    assert names("?state=paused") == []


def test_filters_and_search(admin_client, make_task, run):
    failing = make_task(name="alpha-sync", execution_mode="skip")
    make_task(name="beta-sync")
    run(failing, status="failed")
    names = lambda query: [t.name for t in admin_client.get(changelist("task") + query).context["cl"].result_list]  # noqa: E731
    assert names("?q=alpha") == ["alpha-sync"]
    assert names(f"?q={failing.pk}") == ["alpha-sync"]
    assert names("?last_run=failed") == ["alpha-sync"]
    assert names("?last_run=never") == ["beta-sync"]
    assert names("?execution_mode__exact=skip") == ["alpha-sync"]


def test_sorting_by_success_rate_works(admin_client, make_task, run):
    good, bad = make_task(name="good"), make_task(name="bad")
    run(good, status="success")
    run(bad, status="failed")
    response = admin_client.get(changelist("task") + "?o=8")  # the 8th column: 24 h success
    assert response.status_code == 200
    assert [t.name for t in response.context["cl"].result_list] == ["bad", "good"]


def test_list_queries_do_not_grow_with_rows(make_task, run, queries_for):
    for _ in range(3):
        run(make_task(), status="success")
    few = queries_for(changelist("task"))
    for _ in range(30):
        task = make_task()
        run(task, status="failed", minutes_ago=3)
        run(task, status="success", minutes_ago=60 * 25 + 1)
    assert queries_for(changelist("task")) == few
    assert few <= 8, few


def test_large_lists_stay_within_a_query_budget(admin_client, make_task, run, django_assert_max_num_queries):
    for index in range(40):
        run(make_task(), status="success", minutes_ago=index + 1)
    with django_assert_max_num_queries(8):
        assert admin_client.get(changelist("task")).status_code == 200


def test_the_list_counts_only_up_to_a_bound_past_the_page_and_says_more_than(admin_client, make_task, monkeypatch):
    # A million tasks: Django's exact COUNT(*)s (twice: filtered and in full) cost more than the page itself.
    monkeypatch.setattr("scheduler_project.pagination.COUNT_AHEAD", 3)
    monkeypatch.setattr("tasks.admin.TaskAdmin.list_per_page", 2)
    names = sorted(make_task(name=f"task-{i}").name for i in range(7))
    response = admin_client.get(changelist("task"))
    cl = response.context["cl"]
    assert (cl.result_count, cl.full_result_count, cl.paginator.count_is_exact) == (3, None, False)
    page = response.content.decode()
    assert "more than 3 tasks" in page and "Select all matching tasks (more than 3)" in page
    response = admin_client.get(changelist("task") + "?p=3")  # the bound moves with the page: the end is in sight
    cl = response.context["cl"]
    assert (cl.result_count, cl.paginator.count_is_exact) == (7, True)
    assert [task.name for task in cl.result_list] == names[4:6]
    assert "7 tasks" in response.content.decode() and "more than" not in response.content.decode()


def test_the_list_is_in_name_order_with_the_id_after_it(admin_client, make_task):
    # A total order idx_name (name, id) serves: without the id the changelist appends "-pk", which it cannot.
    make_task(name="b")
    make_task(name="a")
    cl = admin_client.get(changelist("task")).context["cl"]
    assert [task.name for task in cl.result_list] == ["a", "b"]
    order = tuple(cl.queryset.query.order_by)  # Django repeats the admin's ordering: same columns, same index
    assert order[:2] == ("name", "id") and set(order) == {"name", "id"}


def test_a_later_page_reads_its_ids_first_and_its_figures_for_its_rows_only(admin_client, make_task, run,
                                                                            monkeypatch):
    # Over OFFSET the database computed every skipped row's last run and success rate: a million tasks, page 50
    # took 227 ms for the rows and 9 ms for their ids. The page's ids come first, then its rows with figures.
    monkeypatch.setattr("tasks.admin.TaskAdmin.list_per_page", 2)
    tasks = [make_task(name=f"task-{i}") for i in range(5)]
    run(tasks[2], status="failed")
    run(tasks[3], status="success")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(changelist("task") + "?p=2")
    rows = response.context["cl"].result_list
    assert [(t.name, t.last_run_status, t.runs_24h) for t in rows] == [("task-2", "failed", 1),
                                                                        ("task-3", "success", 1)]
    with_figures = [q["sql"] for q in queries.captured_queries
                    if "task_executions" in q["sql"] and 'FROM "tasks"' in q["sql"].replace("`", '"')]
    assert with_figures and all("OFFSET" not in sql.upper() for sql in with_figures)
