"""Workload 8 (issue #21), what a leader does with a million tasks: measured on the running system while the
million-task node leads (``bench.run``'s scale round at ``Sizes.million`` tasks calls ``measure_live``).

- a task change applies: an idle task's cron is changed through the API to every second; the figure is the
  time from the API's answer to the first dispatch of the task reaching the executor (the change waits for
  the next whole second, its first fire time, so ~0.5 s of it is the schedule itself);
- the API's task list and the console's task list under ``wrk`` (two connections: latency, not queueing).
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import requests

from bench import api_load
from bench.run import EVERY_SECOND
from tests.processes import wait_for

CONSOLE_USER = ("bench-console", "bench-console-password-0123")


def measure_live(bench, ours, task_ids: list[str], seconds: int) -> dict:
    """The figures of the running system (``ours``: web and leading node up, ``task_ids`` its idle tasks)."""
    if ours.create_api_key() is None:
        raise RuntimeError("manage.py create_api_key failed: the API cannot be measured")
    figures: dict = {}
    try:  # each measure on its own: one that fails is reported, the others still run
        figures.update(change_applies(bench, ours, task_ids[len(task_ids) // 2]))
    except Exception as exc:
        bench.notes.append(f"million: the task change was not measured: {type(exc).__name__}: {exc}"[:400])
    headers = ours.auth_headers()
    for key, path in {"api_list": "/api/v1/tasks?" + urlencode({"page": 1, "page_size": 20}),
                      "api_list_active_page_50": "/api/v1/tasks?" + urlencode({"status": "active", "page": 50,
                                                                                  "page_size": 20})}.items():
        figures[key] = api_load.measure(ours.web, path, headers, seconds)
    try:
        cookie = console_session(ours)
    except Exception as exc:
        bench.notes.append(f"million: the console was not measured: {type(exc).__name__}: {exc}"[:400])
        return figures
    for key, path in {"console_list": "/admin/tasks/task/",
                      "console_list_page_50": "/admin/tasks/task/?p=50"}.items():
        figures[key] = api_load.measure(ours.web, path, {"Cookie": cookie}, seconds)
    return figures


def change_applies(bench, ours, task_id: str) -> dict:
    """Seconds from the API's answer to a cron change until the changed task's first dispatch arrives."""
    response = requests.put(f"{ours.web.url}/api/v1/tasks/{task_id}", json={"cron_expression": EVERY_SECOND},
                            headers=ours.auth_headers(), timeout=30)
    response.raise_for_status()
    answered_at = time.time()
    first = wait_for(lambda: _first_record(bench, task_id), 30, interval=0.05,
                     message="the changed task's first dispatch")
    _, scheduled, received = first
    return {"change_applied": received - answered_at, "first_fire_lateness": received - scheduled}


def _first_record(bench, task_id: str) -> tuple | None:
    records = [record for record in bench.stub_records("ours") if record[0] == task_id]
    return min(records, key=lambda record: record[2]) if records else None


def console_session(ours) -> str:
    """A ``Cookie`` header of a superuser logged in to the console through its login form."""
    from django.contrib.auth import get_user_model

    username, password = CONSOLE_USER
    user, _ = get_user_model().objects.get_or_create(username=username, defaults={"is_staff": True,
                                                                                  "is_superuser": True})
    user.set_password(password)
    user.save()
    session = requests.Session()
    login = f"{ours.web.url}/admin/login/"
    session.get(login, timeout=30)
    response = session.post(login, timeout=30, allow_redirects=False, headers={"Referer": login},
                            data={"username": username, "password": password, "next": "/admin/",
                                  "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")})
    if response.status_code != 302 or "sessionid" not in session.cookies:
        raise RuntimeError(f"console login failed: HTTP {response.status_code}")
    cookie = "; ".join(f"{name}={value}" for name, value in session.cookies.items())
    page = requests.get(f"{ours.web.url}/admin/tasks/task/", headers={"Cookie": cookie}, timeout=60,
                        allow_redirects=False)
    if page.status_code != 200:  # a redirect to the login page would read as a fast answer under wrk
        raise RuntimeError(f"console task list answered HTTP {page.status_code} with the session")
    return cookie
