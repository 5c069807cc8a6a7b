# The Python services of one API task: the verifier (`python -m verifier`) and FastAPI
# (`python -m fastapi_app`). One image, two commands: compose and the ECS task definition choose the
# command. Only these two packages are copied in: the development identity provider and the local
# launcher never ship in a production image (tests/unit/deploy checks it).
#
# Build from the repository root (deploy/docker/prepare.py makes the base image where no registry
# serves it; compose.yaml passes the optional build_ca secret):
#   docker build -f deploy/docker/python.Dockerfile -t entra-bff-edge/python:<tag> .
#
# Every image of the project builds from the same Debian 12 base and Debian's own Python 3.11.
ARG BASE_IMAGE=debian:12-slim

FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY deploy/docker/requirements.lock ./
# Every dependency (and setuptools, which builds the project) at the exact version and file hashes of
# the lock: the same image from the same commit, and a tampered or substituted download fails the
# build. The project itself is then installed without its dependencies and without fetching anything.
# After changing pyproject.toml's dependencies, re-lock with pip-tools under Debian 12's Python 3.11.2, the
# image's (markers such as python_full_version < "3.11.3" decide what is needed), e.g. in the base image:
#   pip-compile --generate-hashes --allow-unsafe --strip-extras --build-deps-for=wheel \
#     --no-emit-index-url --no-emit-find-links -o deploy/docker/requirements.lock pyproject.toml
# build_ca: an extra CA bundle for a TLS-intercepting proxy (deploy/docker/prepare.py), mounted for
# this step only and never part of a layer.
RUN --mount=type=secret,id=build_ca \
    if grep -qs 'BEGIN CERTIFICATE' /run/secrets/build_ca; then export PIP_CERT=/run/secrets/build_ca; fi \
 && python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml ./
COPY service_runtime/ service_runtime/
COPY verifier/ verifier/
COPY fastapi_app/ fastapi_app/
# A regular (non-editable) install into its own virtual environment, byte-compiled at build time so
# the read-only root filesystem never needs a __pycache__ write. setuptools only builds it.
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation --no-index . \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/pip uninstall --yes --quiet setuptools \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM ${BASE_IMAGE}
# python3-minimal's interpreter plus the standard library; nothing to compile with.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app \
 && install -d -o 10001 -g 101 -m 0755 /tls
# /tls: where compose.yaml's development TLS volume is mounted. Docker gives a new named volume the
# owner of the directory it is first mounted on, so compose's tls-init (user 10001, group 101:
# nginx's, which reads the key) can write it. Empty and unused on ECS.
COPY --from=build /opt/venv /opt/venv
# No data in the container: the API's database is API_DATABASE_URL (RDS on AWS, the postgres
# service in compose), so the root filesystem stays read-only and no volume is needed.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /opt/venv
USER 10001:10001
# No default service: the command names one explicitly (python -m verifier | python -m fastapi_app).
CMD ["python", "-c", "import sys; sys.exit('choose a service: python -m verifier | python -m fastapi_app')"]
