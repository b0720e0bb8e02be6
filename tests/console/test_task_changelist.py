"""The task list: schedule in words, last run, 24 h success rate, soft-deleted tasks hidden by default,
filters and search, and a constant number of queries whatever the number of rows."""

from __future__ import annotations

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
