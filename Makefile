# The same commands locally and in CI.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Every version make installs, pinned: a run of `make test` changes only when we do.
LOCK   := requirements/constraints.txt
# One test process per core; a file's tests stay in one process, so a module's server
# fixture starts once and no test leans on another file's leftovers.
PARALLEL := -n auto --dist loadfile

.PHONY: serve test test-fast lint bench lock clean chromium screenshots

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

## lock: refresh the pinned versions to the newest that pyproject.toml allows
# (uv alone, not the pinned install: the pins may be what no longer fits pyproject.toml)
lock:
	test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet uv; }
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--upgrade --quiet --no-header --output-file $(LOCK)

## serve: install what is needed and run Tidings on SQLite at http://127.0.0.1:8000
serve: $(STAMP)
	TIDINGS_WEBHOOK_ALLOW_PRIVATE=true $(BIN)/tidings serve

## test: the whole suite (PostgreSQL too when TIDINGS_TEST_POSTGRES_URL is set), lint, types,
## the import layering ([tool.importlinter] in pyproject.toml)
# The suite starts hundreds of `tidings` processes; each would compile our modules again
# where the environment says not to write bytecode (PYTHONDONTWRITEBYTECODE), 0.12 s of
# the 1.2 s a CLI command takes. compileall writes it once, whatever that says.
test: $(STAMP) chromium
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m compileall -q src
	$(BIN)/pytest $(PARALLEL) --cov --cov-report=term:skip-covered

## chromium: Debian's chromium, the browser of the portal's tests (tests/portal/browser)
# Playwright drives the system's browser: `playwright install` would download one of its
# own, which an offline machine cannot, and Debian keeps chromium patched for us.
chromium:
	command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }

## screenshots: the portal's pictures in docs/portal/, taken by its browser tests
screenshots: $(STAMP) chromium
	TIDINGS_SCREENSHOTS_DIR=docs/portal $(BIN)/pytest -q -p no:cacheprovider tests/portal/browser

## test-fast: the suite without the process-killing functional tests
test-fast: $(STAMP)
	$(BIN)/pytest $(PARALLEL) -m "not slow" -q

## bench: throughput and latency on SQLite and PostgreSQL, then the SMPP path against
## Kannel (bench/smpp.py), into docs/benchmarks.md
bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.smpp

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .coverage
