# syntax=docker/dockerfile:1
# The Python services of one API task: the verifier (`python -m verifier`) and FastAPI
# (`python -m fastapi_app`). One image, two commands: compose and the ECS task definition choose the
# command. Only these two packages are copied in: the development identity provider and the local
# launcher never ship in a production image (tests/unit/deploy checks it).
#
# Build from the repository root:
#   docker build -f deploy/docker/python.Dockerfile -t entra-bff-edge/python:<tag> .

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY deploy/docker/requirements.lock ./
# Every dependency (and setuptools, which builds the project) at the exact version and file hashes of
# the lock: the same image from the same commit, and a tampered or substituted download fails the
# build. The project itself is then installed without its dependencies and without fetching anything.
# After changing pyproject.toml's dependencies, re-lock with pip-tools (Python 3.11, as the image):
#   pip-compile --generate-hashes --allow-unsafe --strip-extras --build-deps-for=wheel \
#     --no-emit-index-url --no-emit-find-links -o deploy/docker/requirements.lock pyproject.toml
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml ./
COPY service_runtime/ service_runtime/
COPY verifier/ verifier/
COPY fastapi_app/ fastapi_app/
# A regular (non-editable) install into its own virtual environment, byte-compiled at build time so
# the read-only root filesystem never needs a __pycache__ write.
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation --no-index . \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE}
# A fixed numeric uid/gid: the ECS task definition and compose pin `user` to the same numbers.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app
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
