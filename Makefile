# The two commands a person needs: `make run` starts the whole stack, `make test` runs every test.
# Both do all set-up on a fresh Debian machine first (scripts/setup.sh is idempotent).
PYTHON := .venv/bin/python
# The Node.js scripts/setup.sh installs when the machine's is too old for the SPA comes first.
export PATH := $(CURDIR)/.cache/node/bin:$(PATH)
# The project's Docker configuration: the buildx plugin scripts/setup.sh builds (Compose builds the
# images with it) lives in its cli-plugins folder.
export DOCKER_CONFIG := $(CURDIR)/.cache/docker/config

.PHONY: setup run test test-fast bench bench-edge soak lint images

setup:
	@bash scripts/setup.sh

# RUN_ARGS goes to the launcher: `make run RUN_ARGS=--tracing` also starts Jaeger and sends every
# request's trace there (docs/tracing.md); `--database postgres`, `--tasks 2` (python -m stack up -h).
run: setup
	$(PYTHON) -m stack up$(if $(RUN_ARGS), $(RUN_ARGS))

# Every test, the container tests included: scripts/docker-engine.sh uses the Docker engine that
# answers, or starts Debian's dockerd for the run (as root) and stops it afterwards.
test: setup
	@bash scripts/docker-engine.sh $(PYTHON) -m pytest

test-fast: setup
	$(PYTHON) -m pytest tests/unit tests/security

bench: setup
	$(PYTHON) -m bench.verify

# The whole edge against validating in the app (about 6 minutes; not part of `make test`). The bench
# extra (py-spy, fastapi-azure-auth) is installed into .venv first; `BENCH_EDGE_ARGS='--profile 8'`
# also writes py-spy summaries into bench/profiles/.
bench-edge: setup
	$(PYTHON) -m pip install --quiet -e '.[bench]'
	$(PYTHON) -m bench.edge $(BENCH_EDGE_ARGS)

# Two tasks behind HAProxy for 20 minutes at 70 % of their measured capacity (about 22 minutes; not
# part of `make test`); the figures go into bench/README.md.
soak: setup
	$(PYTHON) -m bench.soak --write $(SOAK_ARGS)

lint: setup
	.venv/bin/ruff check .

# Every image of compose.yaml (the three the ECS task runs, and devidp, PostgreSQL and Redis for local
# use), from one Debian 12 base: deploy/docker/prepare.py pulls it, or makes it with mmdebstrap where
# no registry serves it, and hands the machine's extra CAs to the build steps (a TLS-intercepting
# proxy), never to the images. `docker compose --env-file deploy/docker/devidp.env up` then starts them.
images: setup
	@bash scripts/docker-engine.sh sh -c '$(PYTHON) deploy/docker/prepare.py && \
	  BUILD_CA_FILE=.cache/docker/build-ca.pem .cache/bin/docker-compose --env-file deploy/docker/devidp.env \
	  --profile devidp build'
