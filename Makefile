# Organic code verification service. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt $(wildcard requirements-ocr.txt) | sha1sum | cut -c1-12)
PORT ?= 8000
export PYTHONPATH := $(CURDIR)

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@if [ -f requirements-ocr.txt ]; then $(PY) -m pip install -q --no-deps -r requirements-ocr.txt; fi
	@bash scripts/system-packages.sh
	@bash scripts/pip-check.sh $(PY)
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## Create .venv and install pinned dependencies (and the few Debian packages needed)

run: $(STAMP) ## Serve the product on http://127.0.0.1:8000 (embedded SQLite + in-process cache, demo data)
	$(VENV)/bin/flask --app wsgi db upgrade
	$(VENV)/bin/flask --app wsgi seed-demo
	$(VENV)/bin/gunicorn -c gunicorn.conf.py wsgi:app

test: $(STAMP) ## Run every test (MariaDB/Redis tests fail, not skip, with REQUIRE_SERVICES=1)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (lint and format), mypy and the import contracts
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP) ## Benchmark the verify path against the floors: realistic traffic, 1 M codes (BENCH_ARGS="--plan classic" for the old plan)
	@bash scripts/system-packages.sh bench
	$(PY) bench/verify_bench.py $(BENCH_ARGS)

bench-budget: $(STAMP) ## Where a verify's CPU goes, stage by stage, beside the floors, in process (needs MariaDB, Redis)
	$(PY) bench/verify_budget.py $(BENCH_ARGS)

bench-prototype: $(STAMP) ## The round-trip issue's lean prototype beside floor (b): what the design itself reaches here (needs Redis, wrk)
	@bash scripts/system-packages.sh bench
	$(PY) bench/lean_prototype.py $(BENCH_ARGS)

bench-scan-state: $(STAMP) ## Redis CPU per scan script call and bytes per scanned code (BENCH_ARGS="--against REV" beside another revision; needs Redis)
	$(PY) bench/scan_state_cost.py $(BENCH_ARGS)

bench-import: $(STAMP) ## Benchmark importing 1 M codes into MariaDB and Redis bytes per cached code
	$(PY) bench/import_bench.py $(BENCH_ARGS)

docker: ## Build the container image (needs a Docker engine)
	docker build -t organic-verify .

clean: ## Remove the virtualenv, caches and the embedded database
	rm -rf $(VENV) instance .pytest_cache .ruff_cache .mypy_cache

.PHONY: help install run test lint i18n bench bench-budget bench-prototype bench-scan-state bench-import bench-dashboard bench-scans bench-scanner loadtest docker clean

loadtest: ## Run the locust scenario headless for 60 s against HOST (default http://127.0.0.1:8000)
	@test -x .venv-load/bin/locust || ($(PYTHON) -m venv .venv-load && .venv-load/bin/pip install -q -r loadtests/requirements.txt)
	.venv-load/bin/locust -f loadtests/locustfile.py --host $${HOST:-http://127.0.0.1:8000} --headless -u 50 -r 10 -t 60s

bench-dashboard: $(STAMP) ## Seed 10 M scan events and 100 k flags into MariaDB; p50/p95 server time per dashboard page (goal p95 <= 300 ms)
	$(PY) bench/dashboard_bench.py $(BENCH_ARGS)

bench-scans: $(STAMP) ## Replay genuine shoppers and copy campaigns; recall and false positives
	$(PY) bench/scan_simulator.py $(BENCH_ARGS)

bench-scanner: $(STAMP) ## Label-photo scanner vs zxing-cpp, pyzbar, OpenCV and RapidOCR alone on synthetic photos
	$(PY) bench/scanner_bench.py $(BENCH_ARGS)

i18n: $(STAMP) ## Re-extract the dashboard's messages into its Chinese catalog and compile it (edit the .po's Chinese between runs)
	$(VENV)/bin/pybabel -q extract -F dashboard/babel.cfg -k _l -k lazy_gettext --no-location --sort-output --project organic-verify -o dashboard/translations/messages.pot .
	$(VENV)/bin/pybabel -q update -i dashboard/translations/messages.pot -d dashboard/translations -l zh --no-fuzzy-matching --ignore-obsolete
	$(VENV)/bin/pybabel compile -d dashboard/translations --statistics
