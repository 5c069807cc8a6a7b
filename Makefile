# The two commands a person needs: `make run` starts the whole stack, `make test` runs every test.
# Both do all set-up on a fresh Debian machine first (scripts/setup.sh is idempotent).
PYTHON := .venv/bin/python
# The Node.js scripts/setup.sh installs when the machine's is too old for the SPA comes first.
export PATH := $(CURDIR)/.cache/node/bin:$(PATH)

.PHONY: setup run test test-fast bench bench-edge lint

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

lint: setup
	.venv/bin/ruff check .
