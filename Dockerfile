# One image for every process of the service; pick the process with the command:
#   notification serve --host 0.0.0.0 --port 8000          (default: the API)
#   notification database upgrade --no-prompt               (migrations, one-shot)
#   procrastinate --app=notification.worker.app worker      (delivery worker)
#   notification fake-provider --host 0.0.0.0 --port 9090   (fake SMS provider, dev/staging)
#
# Python 3.11 matches CI and the locked dev environment, so the image runs what the tests ran.
# Pinned to a patch release and Debian release, so a rebuild does not silently take another base;
# raise it deliberately (and pin its digest, python:<tag>@sha256:..., where the registry is known).
ARG PYTHON_VERSION=3.11.11
ARG DEBIAN_RELEASE=bookworm

# --- builder: resolve the locked dependencies into /app/.venv -------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_NO_CACHE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

# uv comes from PyPI (only package registries are reachable from our builders).
RUN pip install "uv>=0.5"

WORKDIR /app

# Dependencies first: this layer is rebuilt only when pyproject.toml or uv.lock change.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the project itself, installed editable from /app: the package finds its migrations at
# Path(notification.__file__).resolve().parents[2] / "migrations", i.e. /app/migrations, so
# src/notification and migrations/ must stay side by side under /app.
COPY README.md ./
COPY src ./src
COPY migrations ./migrations
RUN uv sync --frozen --no-dev \
    && python -m compileall -q src migrations

# --- runtime: the venv and the source, nothing else -----------------------------------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH="/app/.venv/bin:${PATH}" \
    NOTIFICATION_DATA_DIR=/tmp/notification

# A fixed numeric uid/gid, so Kubernetes can check runAsNonRoot against the image.
RUN groupadd --system --gid 10001 notification \
    && useradd --system --uid 10001 --gid notification --no-create-home \
       --home-dir /app --shell /usr/sbin/nologin notification

WORKDIR /app

# Same paths as in the builder: the venv's scripts and its editable .pth point at /app.
# The code stays owned by root: the service user can read it but not change it.
COPY --from=builder /app /app

USER 10001:10001

EXPOSE 8000

# Only meaningful for the API; compose disables it for the worker and the migration job.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["notification", "serve", "--host", "0.0.0.0", "--port", "8000"]
