"""Static files under the production entrypoint: `manage.py serve` (gunicorn, DEBUG=0) serves the console's
stylesheets and scripts and the Swagger UI bundle itself, under content-hashed names cached for ten years,
gzipped for clients that accept it; JSON access logs with LOG_FORMAT=json."""

from __future__ import annotations

import json
import re

import pytest
import requests

from tests.processes import Processes, child_database_url, child_log_dir

pytestmark = pytest.mark.e2e

TEN_YEARS = "max-age=315360000"


@pytest.fixture(scope="module")
def module_procs(request, django_db_setup, django_db_blocker):
    """One web node for the module's tests: they only read static files and pages that need no rows."""
    with django_db_blocker.unblock():
        processes = Processes(child_database_url(), log_dir=child_log_dir(request.node.nodeid))
    try:
        yield processes
    finally:
        processes.close()


@pytest.fixture
def procs(request, module_procs):
    request.node.child_processes = module_procs  # a failing test's report gets the node's log
    return module_procs


@pytest.fixture
def web(procs):
    if procs.web is None:
        procs.start_production_web(LOG_FORMAT="json")
    return procs.wait_web(90)


def hashed_url(page: str, pattern: str) -> str:
    match = re.search(rf'["\'](/static/{pattern})["\']', page)
    assert match, f"no {pattern} in the page"
    return match.group(1)


def manifest_url(web, name: str) -> str:
    """The hashed name collectstatic gave ``name`` (for files no public page links to)."""
    static_root = web.log_path.with_name(f"static-{web.name}")
    return "/static/" + json.loads((static_root / "staticfiles.json").read_text())["paths"][name]


def test_admin_console_and_swagger_assets_are_served_hashed_with_long_cache_headers(web):
    login = requests.get(f"{web.url}/admin/login/", timeout=10)
    docs = requests.get(f"{web.url}/api/docs/", timeout=10)
    assert login.status_code == docs.status_code == 200
    assets = [
        hashed_url(login.text, r"admin/css/base\.[0-9a-f]{12}\.css"),
        hashed_url(login.text, r"console/console\.[0-9a-f]{12}\.css"),
        manifest_url(web, "console/dashboard.js"),
        hashed_url(docs.text, r"drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle\.[0-9a-f]{12}\.js"),
    ]
    for path in assets:
        response = requests.get(f"{web.url}{path}", headers={"Accept-Encoding": "gzip"}, timeout=10)
        assert response.status_code == 200, path
        assert TEN_YEARS in response.headers["Cache-Control"] and "immutable" in response.headers["Cache-Control"]
        assert response.headers.get("Content-Encoding") == "gzip", path
        assert len(response.content) > 100


def test_unhashed_names_are_served_with_a_short_cache_lifetime(web):
    response = requests.get(f"{web.url}/static/admin/css/base.css", timeout=10)
    assert response.status_code == 200 and "body" in response.text
    assert response.headers["Cache-Control"] == "max-age=60, public"
    assert requests.get(f"{web.url}/static/admin/css/nope.css", timeout=10).status_code == 404


def test_access_log_is_json_lines(web, procs):
    requests.get(f"{web.url}/static/admin/css/base.css", headers={"User-Agent": 'quote " agent'}, timeout=10)

    def logged():
        for line in web.log_text().splitlines():
            if line.startswith("{") and '"gunicorn.access"' in line:
                record = json.loads(line)
                if record["path"] == "/static/admin/css/base.css" and record["user_agent"] == 'quote " agent':
                    return record
        return None

    record = procs.wait_until(logged, 10, "the access log line", watch=[web])
    assert record["status"] == 200 and record["method"] == "GET" and record["remote_addr"] == "127.0.0.1"
    assert record["message"] == "GET /static/admin/css/base.css 200" and record["duration_ms"] >= 0
