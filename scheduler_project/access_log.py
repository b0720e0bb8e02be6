"""gunicorn's logger writing JSON lines (``LOG_FORMAT=json``; ``deploy/gunicorn.conf.py`` selects it).

gunicorn formats its access log from a printf-style template, which cannot escape a quote in a path or a
user agent into valid JSON; this logger passes each request's fields as ``extra`` to the project's
:class:`~scheduler_project.logformat.JSONFormatter` instead, and formats gunicorn's own messages
(worker started, timeouts) the same way. Request headers other than the user agent are left out: they
carry credentials.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from scheduler_project.logformat import JSONFormatter


class JSONLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)  # also on every SIGHUP reload: gunicorn replaces its handlers, so set them again
        formatter = JSONFormatter()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(formatter)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        self.access_log.info("%s %s %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"),
                             _status_code(resp.status), extra=request_fields(resp, environ, request_time))


def request_fields(resp: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
    return {
        "remote_addr": environ.get("REMOTE_ADDR"),
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("PATH_INFO"),
        "query": environ.get("QUERY_STRING") or "",
        "status": _status_code(resp.status),
        "bytes": getattr(resp, "sent", None),
        "duration_ms": round(request_time.total_seconds() * 1000, 3),
        "user_agent": environ.get("HTTP_USER_AGENT", ""),
        "referer": environ.get("HTTP_REFERER", ""),
    }


def _status_code(status: Any) -> int | None:
    text = str(status).split(None, 1)[0] if status is not None else ""
    return int(text) if text.isdigit() else None
