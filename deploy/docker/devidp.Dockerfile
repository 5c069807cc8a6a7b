# syntax=docker/dockerfile:1
# DEVELOPMENT ONLY: devidp, the local stand-in for Microsoft Entra ID. Used by compose.yaml's
# `devidp` profile; never pushed to a production registry and never referenced by ecs-taskdefs/.
#
# Build from the repository root:
#   docker build -f deploy/docker/devidp.Dockerfile -t entra-bff-edge/devidp:local .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# The same locked, hash-checked dependencies as the production image (python.Dockerfile).
COPY deploy/docker/requirements.lock ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml ./
COPY service_runtime/ service_runtime/
COPY devidp/ devidp/
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation --no-index . \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
COPY devidp/example.toml /etc/devidp/example.toml
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8900
CMD ["python", "-m", "devidp", "--config", "/etc/devidp/example.toml"]
