# Habits of the MURA platform. Quick start: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: venv demo test test-unit test-fast check lint typecheck bench docs testing-doc clean lock

ASSETS := infra/data_docs_assets

venv: $(VENV)/.installed $(ASSETS)/node_modules/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11'"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

# The scripts and styles of GX's Data Docs, served from the site (pages render offline).
$(ASSETS)/node_modules/.installed: $(ASSETS)/package.json $(ASSETS)/package-lock.json
	@command -v npm >/dev/null || { echo "make: Data Docs assets need npm: run 'apt-get install npm' (Debian), then make again"; exit 1; }
	cd $(ASSETS) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

demo: venv
	$(BIN)/python -m pipelines.demo

test: venv
	@test -x /usr/bin/chromium || { echo "make: the browser test needs Chromium: run 'apt-get install chromium' (Debian), then 'make test' again"; exit 1; }
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { echo "make: the gateway tests need nginx: run 'apt-get install nginx' (Debian), then 'make test' again"; exit 1; }
	@test -x /usr/sbin/Orthanc && test -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so || { echo "make: the PACS tests need Orthanc: run 'apt-get install orthanc orthanc-dicomweb' (Debian), then 'make test' again"; exit 1; }
	$(BIN)/python -m pytest -p no:cacheprovider --timeout=900 -n 2 --dist loadfile --no-loadscope-reorder --junitxml=test-artifacts/junit.xml tests

# The inner loop: pure code only (no TensorFlow, MLflow, GX, DVC or Airflow in the test process).
test-unit: venv
	MURA_CHECK_LIGHT_IMPORTS=1 $(BIN)/python -m pytest -p no:cacheprovider -q tests/unit

test-fast: venv
	$(BIN)/python -m pytest -p no:cacheprovider -m "not slow and not integration and not e2e" tests

# What to run before a commit: lint, format, types of the typed core, unit tests.
check: lint typecheck test-unit

lint: venv
	$(BIN)/ruff check mura_core pipelines serving dags tests benchmarks
	$(BIN)/ruff format --check mura_core pipelines serving dags tests benchmarks

typecheck: venv
	$(BIN)/mypy

# docs/CLI.md: every command and option, generated from the parsers (a unit test checks it is current).
docs: venv
	COLUMNS=100 $(BIN)/python -m pipelines.cli.reference > docs/CLI.md
	$(BIN)/python -m serving.gateway compose-template > infra/gateway/gateway.conf.template
	$(BIN)/python -m pipelines.pacs.orthanc > infra/pacs/platform_routes.lua

# docs/TESTING.md: behaviour -> test -> tier -> time, from the tests and the last `make test`'s report.
testing-doc: venv
	$(BIN)/python -m tests.testing_doc test-artifacts/junit.xml > docs/TESTING.md

bench: venv
	mkdir -p benchmarks/results
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script --out benchmarks/results || exit 1; done

lock: venv
	{ grep '^#' requirements.lock; $(BIN)/pip freeze --exclude-editable | grep -v '^mura-platform'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	-$(BIN)/mura down 2>/dev/null
	rm -rf $(VENV) .mura build *.egg-info .pytest_cache .ruff_cache great_expectations/uncommitted
