# One image for every process: web (gunicorn), each queue's consumer, the scheduler,
# the autoscaler and the release step. Compose (or any orchestrator) picks the
# command per service; the default is the web server.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: the hashed runtime lock into a virtualenv ----------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
# requirements/runtime.txt is exported from uv.lock (make lock): every package pinned,
# with its hashes. Nothing is resolved here, nothing unhashed or built from source gets in,
# and no test, bench or lint package (those are other lock files).
COPY requirements/runtime.txt .
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps --only-binary :all: -r runtime.txt \
    && /opt/venv/bin/pip check

# --- runtime: slim, non-root ----------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SHOP_ENV=production \
    DATA_DIR=/var/lib/shop \
    HOST=0.0.0.0 \
    PORT=8000 \
    LOG_FORMAT=json
RUN groupadd --system --gid 10001 shop \
    && useradd --system --uid 10001 --gid shop --no-create-home --shell /usr/sbin/nologin shop \
    && mkdir -p /var/lib/shop \
    && chown shop:shop /var/lib/shop
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY . /app
USER shop
EXPOSE 8000
# For the web service; worker services turn it off in docker-compose.yml.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"]
CMD ["gunicorn", "wsgi:app", "-c", "gunicorn.conf.py"]
