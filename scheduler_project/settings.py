"""Settings for the scheduler. Everything that varies between deployments comes from the environment."""

import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from scheduler_project.env import env_bool, env_float, env_int, env_list, env_str
from scheduler_project.secret_key import installation_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", True)
# Unset: a random key made for this installation and kept in SECRET_KEY_FILE (mode 0600). Several web
# servers on different hosts must share one: set SECRET_KEY (or the same file) on all of them.
SECRET_KEY = env_str("SECRET_KEY", "") or installation_secret_key(
    Path(env_str("SECRET_KEY_FILE", str(BASE_DIR / "var" / "secret_key"))))
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "console.apps.ConsoleAdminConfig",  # django.contrib.admin with the operators' console site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",  # admin login lockout (scheduler_project.security)
    "accounts",  # API keys, roles, API authentication
    "tasks",
    "executors",
    "executions",
    "loadbalance",
    "workflows",  # DAGs of tasks: chains, fan-out, fan-in
    "scheduling",
    "monitoring",  # status, health and metrics endpoints; the cluster in the console
    "alerts",  # channels, rules, incidents, the outbox of alert events and their delivery
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files from STATIC_ROOT, before anything that touches the database or the session.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "accounts.passwords.PasswordChecksBusyMiddleware",  # the console's login when password checks are busy
    "accounts.permissions.SecretsHiddenByDefault",  # the API shows secret values to admins only
    "scheduler_project.security.ConsoleContentSecurityPolicy",
    # Last, as django-axes requires: turns a login refused during a lockout into the lockout response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "scheduler_project.urls"
# The API's paths are written without a trailing slash; redirecting POSTs would lose their bodies.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "scheduler_project.wsgi.application"


# Session limits of every connection (web, scheduler, commands; README "Database timeouts"): a locked row or
# table becomes a quick error (503 from the API, a failed tick the loop retries), not a blocked worker.
# Seconds; 0 turns the statement and idle-transaction limits off.
DATABASE_LOCK_TIMEOUT = env_int("DATABASE_LOCK_TIMEOUT", 5, minimum=1)
DATABASE_STATEMENT_TIMEOUT = env_int("DATABASE_STATEMENT_TIMEOUT", 30, minimum=0)
DATABASE_IDLE_TRANSACTION_TIMEOUT = env_int("DATABASE_IDLE_TRANSACTION_TIMEOUT", 10, minimum=0)


def _mysql_session(lock: int, statement: int, idle: int) -> str:
    """One SET for the connection's init command. The statement and idle-transaction limits exist on MariaDB
    only (10.3+): inside a MariaDB executable comment, which MySQL skips."""
    return (f"SET sql_mode='STRICT_TRANS_TABLES', innodb_lock_wait_timeout={lock}, lock_wait_timeout={lock}"
            f" /*M!100300 , max_statement_time={statement}, idle_transaction_timeout={idle} */")


def _postgres_session(lock: int, statement: int, idle: int) -> str:
    """libpq ``options``: run-time parameters set when the session starts."""
    return (f"-c lock_timeout={lock}s -c statement_timeout={statement}s"
            f" -c idle_in_transaction_session_timeout={idle}s")


def _database_from_url(url: str) -> dict:
    try:
        config = dj_database_url.parse(url)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not usable: {exc}") from None
    engine = config["ENGINE"]
    limits = (DATABASE_LOCK_TIMEOUT, DATABASE_STATEMENT_TIMEOUT, DATABASE_IDLE_TRANSACTION_TIMEOUT)
    if engine == "django.db.backends.mysql":
        config.setdefault("OPTIONS", {}).update(
            {
                "charset": "utf8mb4",
                # READ COMMITTED: the scheduler's claim-by-conditional-UPDATE must see rows committed
                # by other nodes, not a repeatable-read snapshot.
                "isolation_level": "read committed",
                "init_command": _mysql_session(*limits),
            }
        )
        config.setdefault("TEST", {}).update({"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"})
    elif engine == "django.db.backends.postgresql":
        config.setdefault("OPTIONS", {})["options"] = _postgres_session(*limits)
    elif engine == "django.db.backends.sqlite3":
        # WAL lets the web server read while the scheduler writes; the timeout waits out short write locks.
        config.setdefault("OPTIONS", {}).update(
            {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
        )
        # A file, not Django's in-memory default: end-to-end tests share the test database with the
        # server and scheduler processes they start.
        database_file = Path(config["NAME"])
        config.setdefault("TEST", {}).setdefault("NAME", str(database_file.with_name(f"test_{database_file.name}")))
    return config


DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": _database_from_url(DATABASE_URL)}
DATABASES["default"]["CONN_MAX_AGE"] = env_int("CONN_MAX_AGE", 60, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where `manage.py serve` (collectstatic) puts the files WhiteNoise serves: give each web node on one host
# its own, so one node's collectstatic never rewrites a file another node is serving.
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# Production (DEBUG=0): collectstatic writes content-hashed names plus gzip copies and a manifest, and
# WhiteNoise serves the hashed names with a ten-year immutable Cache-Control. Development serves the
# source files as they are, found anew on each request. The choice follows the DEBUG variable, not
# settings.DEBUG at run time, so the test suite (which turns DEBUG off) renders pages without a manifest.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage" if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage",
    },
}
WHITENOISE_AUTOREFRESH = DEBUG
WHITENOISE_USE_FINDERS = DEBUG

# Request bodies: DRF >= 3.17.2 applies this to JSON too (413 in the API's error body). 1 MiB holds the
# SDK's largest requests (a callback with its 64 KiB log tail and a 64 KiB result; log batches of ~256 KiB);
# an executor posting bigger log batches splits them or this is raised. JSON fields are capped separately.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("DATA_UPLOAD_MAX_NUMBER_FIELDS", 1000, minimum=10)  # form posts (admin)
JSON_FIELD_MAX_BYTES = 64 * 1024

# --- Production hardening (README "Production hardening"). With DEBUG off every default is the secure
# one; each can be overridden from the environment, e.g. SECURE_SSL_REDIRECT=0 when a proxy redirects.
_PRODUCTION = not DEBUG
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _PRODUCTION)
# Paths served over plain HTTP all the same (regexes without the leading slash, e.g. ``^metrics$`` for a
# Prometheus that scrapes over loopback).
SECURE_REDIRECT_EXEMPT = env_list("SECURE_REDIRECT_EXEMPT", [])
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if _PRODUCTION else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", _PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", _PRODUCTION)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _PRODUCTION)
# Origins allowed to POST forms (the admin) when they differ from the host, e.g. https://scheduler.example.com
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"  # no page of the console is meant to be framed


def _proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """``X-Forwarded-Proto: https`` -> ``("HTTP_X_FORWARDED_PROTO", "https")``. Opt-in: trust the header
    only behind a TLS-terminating proxy that always sets it, or any client can claim HTTPS."""
    raw = env_str(name, "").strip()
    if not raw:
        return None
    header, separator, value = raw.partition(":")
    if not separator or not header.strip() or not value.strip():
        raise ImproperlyConfigured(f"{name}={raw!r} is not 'Header-Name: value' (e.g. 'X-Forwarded-Proto: https')")
    return "HTTP_" + header.strip().upper().replace("-", "_"), value.strip()


SECURE_PROXY_SSL_HEADER = _proxy_ssl_header("SECURE_PROXY_SSL_HEADER")
# Django's error reports (DEBUG pages) hide these request headers and settings too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "scheduler_project.security.SecretsExceptionReporterFilter"

# Admin (and HTTP Basic) login lockout by django-axes: LOGIN_FAILURE_LIMIT failures for one username from one
# address lock that pair out for LOGIN_LOCKOUT_MINUTES; a failure during the lockout starts it again.
# ``manage.py axes_reset`` lifts every lockout.
AUTHENTICATION_BACKENDS = [
    "scheduler_project.security.LockoutBackend",
    "accounts.passwords.CappedModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("LOGIN_LOCKOUT_MINUTES", 15, minimum=0.1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "scheduler_project.security.lockout_response"
# Lockouts and the failed-authentication throttle identify a client by its connection's address; behind a
# reverse proxy list the proxies' networks (CIDRs) so that X-Forwarded-For is believed from them only.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
AXES_CLIENT_IP_CALLABLE = "accounts.client_address.axes_client_address"
# Password checks (PBKDF2: 0.3 s of CPU each here) run at most this many at a time per process; a login that
# cannot start one within PASSWORD_CHECK_WAIT_SECONDS is answered 429 (busy) at once, so a flood of logins
# holds neither the CPU nor the worker threads (bench/login_flood.py: 200 concurrent bad logins, other
# clients' p99 0.22 s; without the cap 29 s). Waiting longer holds a thread per waiting login.
PASSWORD_CHECK_CONCURRENCY = env_int("PASSWORD_CHECK_CONCURRENCY", 1, minimum=1)
PASSWORD_CHECK_WAIT_SECONDS = env_float("PASSWORD_CHECK_WAIT_SECONDS", 0.0, minimum=0)

# /metrics: open when empty (a Prometheus on loopback scrapes it as before); when set, scrapes must send
# ``Authorization: Bearer <METRICS_TOKEN>``.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

API_AUTH_FAILURE_RATE = env_str("API_AUTH_FAILURE_RATE", "30/min")
if not re.fullmatch(r"[1-9][0-9]*/(s|sec|m|min|h|hour|d|day)", API_AUTH_FAILURE_RATE):
    raise ImproperlyConfigured(f"API_AUTH_FAILURE_RATE={API_AUTH_FAILURE_RATE!r} is not a rate such as 30/min")

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # README "Authentication". The first class's scheme is the WWW-Authenticate of a 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.authentication.RegistrationKeyAuthentication",
        "accounts.authentication.JWTAuthentication",
        "accounts.authentication.BasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # The role each action needs comes from the view's declarations (accounts.roles.required_role).
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasRole"],
    # Failed authentications per client address (accounts.throttling), then 429.
    "DEFAULT_THROTTLE_RATES": {"auth_failure": API_AUTH_FAILURE_RATE},
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "scheduler_project.errors.api_exception_handler",
    "DATETIME_FORMAT": "iso-8601",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_float("JWT_ACCESS_TOKEN_MINUTES", 15, minimum=1)),
    "REFRESH_TOKEN_LIFETIME": timedelta(hours=env_float("JWT_REFRESH_TOKEN_HOURS", 24, minimum=1)),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "UPDATE_LAST_LOGIN": False,
    # Tokens carry a digest of the password hash: a password change ends every access and refresh token.
    "CHECK_REVOKE_TOKEN": True,
    "TOKEN_REFRESH_SERIALIZER": "accounts.tokens.PasswordBoundTokenRefreshSerializer",
}
# The shared secret executors present to POST /api/v1/executors/register (and nowhere else). Empty: only
# API keys / users with the executor or admin role can register executors.
SCHEDULER_REGISTRATION_KEY = env_str("SCHEDULER_REGISTRATION_KEY", "")

SPECTACULAR_SETTINGS = {
    "TITLE": "Distributed Task Scheduler API",
    "DESCRIPTION": "Tasks, executors, executions and cluster status. Every response is wrapped in "
    "`{code, message, data}`; every error is `{code, message, error, details, timestamp, path}`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and the docs are public; credentials sent to them are not even looked at.
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # 401/403 on every operation that needs credentials (scheduler_project/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "scheduler_project.schema.declare_auth_errors",
    ],
    "ENUM_NAME_OVERRIDES": {
        "TaskStatusEnum": "tasks.choices.TaskStatus",
        "ExecutorStatusEnum": "executors.choices.ExecutorStatus",
        "ExecutionStatusEnum": "executions.choices.ExecutionStatus",
        "CallbackStatusEnum": "executions.serializers.CALLBACK_STATUS_CHOICES",
        "WorkflowStatusEnum": "workflows.choices.WorkflowStatus",
        "WorkflowRunStatusEnum": "workflows.choices.WorkflowRunStatus",
        "ExecutionModeEnum": "tasks.choices.ExecutionMode",
        "WorkflowOverlapPolicyEnum": "workflows.choices.OverlapPolicy",
        # Two fields named "condition": a workflow edge's keeps the name it had, an alert incident's is named.
        "ConditionEnum": "workflows.choices.EdgeCondition",
        "AlertConditionEnum": "alerts.choices.ConditionChoice",
    },
}

# Scheduler tunables (spec 002 §7.2 defaults). Read at call time through scheduler_project.config so
# override_settings works in tests.
SCHEDULER = {
    "TICK_SECONDS": env_float("SCHEDULER_TICK_SECONDS", 0.2, minimum=0.01),
    "HEARTBEAT_INTERVAL_SECONDS": env_float("SCHEDULER_HEARTBEAT_INTERVAL", 5.0, minimum=0.1),
    "INSTANCE_STALE_SECONDS": env_float("SCHEDULER_INSTANCE_STALE_SECONDS", 30.0, minimum=1),
    "LOCK_NAME": env_str("SCHEDULER_LOCK_NAME", "scheduler_leader_lock"),
    "LOCK_IDLE_TIMEOUT_SECONDS": env_int("SCHEDULER_LOCK_IDLE_TIMEOUT", 10, minimum=2),
    "ELECTION_RETRY_SECONDS": env_float("SCHEDULER_ELECTION_RETRY_SECONDS", 0.5, minimum=0.05),
    "HEALTH_CHECK_INTERVAL_SECONDS": env_float("HEALTH_CHECK_INTERVAL", 30.0, minimum=0.1),
    "HEALTH_CHECK_TIMEOUT_SECONDS": env_float("HEALTH_CHECK_TIMEOUT", 5.0, minimum=0.1),
    "HEALTH_FAILURE_THRESHOLD": env_int("HEALTH_CHECK_FAILURE_THRESHOLD", 3, minimum=1),
    "HEALTH_RECOVERY_THRESHOLD": env_int("HEALTH_CHECK_RECOVERY_THRESHOLD", 2, minimum=1),
    "DISPATCH_WORKERS": env_int("SCHEDULER_DISPATCH_WORKERS", 16, minimum=1),
    "DISPATCH_TIMEOUT_SECONDS": env_float("SCHEDULER_DISPATCH_TIMEOUT", 5.0, minimum=0.1),
    "FIRE_BATCH_SIZE": env_int("SCHEDULER_FIRE_BATCH_SIZE", 500, minimum=1),
    # Runs of parallel tasks (no max_instances) are created this long before their time and staged by the
    # dispatcher, so a burst due in one second is POSTed on time instead of after its inserts. 0 = off.
    "FIRE_AHEAD_SECONDS": env_float("SCHEDULER_FIRE_AHEAD_SECONDS", 5.0, minimum=0),
    # Staged runs due within this are claimed (running) before their time, so only the POSTs of a burst
    # remain when it is due. At most FIRE_AHEAD_SECONDS; 0 = claim when due.
    "CLAIM_AHEAD_SECONDS": env_float("SCHEDULER_CLAIM_AHEAD_SECONDS", 0.2, minimum=0),
    "MISFIRE_FIRE_ALL_LIMIT": env_int("SCHEDULER_MISFIRE_FIRE_ALL_LIMIT", 100, minimum=1),
    # The most fire times one backfill request may cover (more is refused, not truncated).
    "BACKFILL_LIMIT": env_int("SCHEDULER_BACKFILL_LIMIT", 1000, minimum=1),
    # A due time older than this when the leader gets to it was missed (no leader ran), not merely late.
    "MISFIRE_THRESHOLD_SECONDS": env_float("SCHEDULER_MISFIRE_THRESHOLD", 5.0, minimum=0.5),
    # Execution leases (README "Leases"): an executor renews the runs it holds every LEASE_RENEW_SECONDS; a run
    # whose lease is not renewed for LEASE_SECONDS is lost.
    "LEASE_SECONDS": env_float("SCHEDULER_LEASE_SECONDS", 15.0, minimum=1),
    "LEASE_RENEW_SECONDS": env_float("SCHEDULER_LEASE_RENEW_SECONDS", 5.0, minimum=0.1),
    "TIMEOUT_GRACE_SECONDS": env_float("SCHEDULER_TIMEOUT_GRACE_SECONDS", 5.0, minimum=0),
    "RETRY_BACKOFF_BASE_SECONDS": env_float("SCHEDULER_RETRY_BACKOFF_BASE", 2.0, minimum=0),
    "RETRY_BACKOFF_MAX_SECONDS": env_float("SCHEDULER_RETRY_BACKOFF_MAX", 300.0, minimum=0),
    "CALLBACK_BASE_URL": env_str("SCHEDULER_CALLBACK_BASE_URL", "http://127.0.0.1:8000"),
    # A node whose clock differs from the database server's by more than this refuses to lead.
    "MAX_CLOCK_OFFSET_SECONDS": env_float("SCHEDULER_MAX_CLOCK_OFFSET", 2.0, minimum=0.01),
    # The keep-alive touches the leader lock only while the loop keeps beginning steps: a leader whose loop
    # has been stuck in one step this long lets the lock's idle timeout hand leadership to a node that works.
    "STALL_LIMIT_SECONDS": env_float("SCHEDULER_STALL_LIMIT", 60.0, minimum=1),
    # Alerts (README "Alerts"): links in messages point at the console under this base URL.
    "CONSOLE_BASE_URL": env_str("SCHEDULER_CONSOLE_BASE_URL",
                                env_str("SCHEDULER_CALLBACK_BASE_URL", "http://127.0.0.1:8000")),
    "ALERT_INTERVAL_SECONDS": env_float("SCHEDULER_ALERT_INTERVAL", 0.5, minimum=0.05),
    "ALERT_MAX_ATTEMPTS": env_int("SCHEDULER_ALERT_MAX_ATTEMPTS", 8, minimum=1),
    "ALERT_RETRY_BASE_SECONDS": env_float("SCHEDULER_ALERT_RETRY_BASE", 5.0, minimum=0),
    "ALERT_RETRY_MAX_SECONDS": env_float("SCHEDULER_ALERT_RETRY_MAX", 600.0, minimum=0),
    "ALERT_SENDING_LEASE_SECONDS": env_float("SCHEDULER_ALERT_SENDING_LEASE", 60.0, minimum=1),
}

# Addresses the scheduler may call executors at (executors.netguard): comma-separated CIDRs and host names
# (".example.com" for a domain and its subdomains). Empty: public addresses only (loopback and private
# networks must be listed). Unspecified, multicast, link-local and cloud metadata addresses are always
# refused. Development (DEBUG on) admits loopback unless the variable is set.
SCHEDULER_EXECUTOR_ALLOWED_NETWORKS = env_list("SCHEDULER_EXECUTOR_ALLOWED_NETWORKS",
                                               ["127.0.0.0/8", "::1/128"] if DEBUG else [])

# Execution history: an execution's logs keep their last this many characters (callbacks and streamed
# lines alike); final executions scheduled more than EXECUTION_RETENTION_DAYS ago are purged (0 keeps all).
EXECUTION_LOG_MAX_CHARS = env_int("EXECUTION_LOG_MAX_CHARS", 1_000_000, minimum=1000)
EXECUTION_RETENTION_DAYS = env_int("EXECUTION_RETENTION_DAYS", 90, minimum=0)
EXECUTION_PURGE_BATCH_SIZE = env_int("EXECUTION_PURGE_BATCH_SIZE", 1000, minimum=1)

# LOG_FORMAT=json: one JSON object per line (scheduler_project.logformat), for log shippers.
LOG_FORMAT = env_str("LOG_FORMAT", "plain").strip().lower()
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} is not a log format (use plain or json)")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"()": "scheduler_project.logformat.PlainFormatter",
                  "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "scheduler_project.logformat.JSONFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # axes.apps announces its configuration at every start-up, management commands included.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes.apps": {"level": "WARNING"}},
}
