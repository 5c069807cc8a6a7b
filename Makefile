# The two commands a person needs: `make run` starts the whole stack, `make test` runs every test.
# Both do all set-up on a fresh Debian machine first (scripts/setup.sh is idempotent).
PYTHON := .venv/bin/python
# The Node.js scripts/setup.sh installs when the machine's is too old for the SPA comes first.
export PATH := $(CURDIR)/.cache/node/bin:$(PATH)

.PHONY: setup run test test-fast bench bench-edge soak lint e2e-compose

setup:
	@bash scripts/setup.sh

run: setup
	$(PYTHON) -m stack up

test: setup
	$(PYTHON) -m pytest

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

# Machines with Docker only: the images of compose.yaml built and started against devidp, the smoke
# tests (bearer, browser session, the Postman collection) run against them by base URL, then
# everything removed again, volumes included. `make test` runs the same smoke tests against the same
# services started as plain processes (tests/e2e/test_compose_model.py).
COMPOSE := .cache/bin/docker-compose --env-file deploy/docker/devidp.env

e2e-compose: setup
	@mkdir -p run/compose; status=0; \
	$(COMPOSE) up --build --wait --wait-timeout 300 || status=$$?; \
	[ $$status -ne 0 ] || $(COMPOSE) run --rm --no-deps -T tls-init cat /data/dev-ca.pem \
	  > run/compose/dev-ca.pem || status=$$?; \
	[ $$status -ne 0 ] || EDGE_ORIGIN=https://localhost:8443 EDGE_IDP_ORIGIN=https://localhost:8900 \
	  EDGE_CA_FILE=run/compose/dev-ca.pem $(PYTHON) -m pytest tests/compose_model/smoke.py -q || status=$$?; \
	$(COMPOSE) down -v; exit $$status
