# One image for every role of the deployment (README "Deploying"): the command chooses web node (the default,
# `manage.py serve`), scheduler node (`manage.py runscheduler`) or executor. compose.yaml runs all three.
# Checked by lint only: tests/deploy runs hadolint on this file; no container engine builds it in the suite.
FROM python:3.11-slim-bookworm AS build
# mysqlclient compiles against the MariaDB client library; every other requirement comes as a wheel.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libmariadb-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt

FROM python:3.11-slim-bookworm
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin scheduler
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=10001:10001 . /app
# An SDK executor keeps its id and signing secret here (compose.yaml mounts a volume on it): it proves them
# when it registers again after its container is recreated.
RUN install -d -o 10001 -g 10001 -m 700 /app/.local/state
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DEBUG=0 \
    WEB_BIND=0.0.0.0:8000 \
    STATIC_ROOT=/app/staticfiles
USER 10001:10001
EXPOSE 8000
# The same entrypoint as on a host: migrate under the lock, collectstatic, gunicorn (deploy/gunicorn.conf.py).
CMD ["python", "manage.py", "serve"]
