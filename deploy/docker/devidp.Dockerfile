# DEVELOPMENT ONLY: devidp, the local stand-in for Microsoft Entra ID. Used by compose.yaml's
# `devidp` profile; never pushed to a production registry and never referenced by ecs-taskdefs/.
#
# Build from the repository root:
#   docker build -f deploy/docker/devidp.Dockerfile -t entra-bff-edge/devidp:local .

ARG BASE_IMAGE=debian:12-slim

FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
# The same locked, hash-checked dependencies as the production image (python.Dockerfile).
COPY deploy/docker/requirements.lock ./
RUN --mount=type=secret,id=build_ca \
    if grep -qs 'BEGIN CERTIFICATE' /run/secrets/build_ca; then export PIP_CERT=/run/secrets/build_ca; fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml ./
COPY service_runtime/ service_runtime/
COPY devidp/ devidp/
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation --no-index . \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/pip uninstall --yes --quiet setuptools \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
COPY devidp/example.toml /etc/devidp/example.toml
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8900
CMD ["python", "-m", "devidp", "--config", "/etc/devidp/example.toml"]
