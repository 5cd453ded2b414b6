# Two commands do all the set-up: `make run` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY        := .venv/bin/python
PIP       := .venv/bin/pip
GISAPP    := .venv/bin/gisapp
STAMP     := .venv/.installed
BENCH_STAMP := .venv/.bench-installed
HOST      ?= 127.0.0.1
PORT      ?= $(or $(GISAPP_PORT),5000)
WORKERS   ?= $(or $(GISAPP_WORKERS),2)
# gthread: an open live stream (/api/v1/stream) holds one worker thread, so 2 x 256 threads hold
# hundreds of dispatcher screens at once (README: Live dispatch).
THREADS   ?= $(or $(GISAPP_THREADS),256)
PYTEST_ARGS ?=

# An external database through GISAPP_DATABASE_URL; otherwise the private cluster.
ifeq ($(strip $(GISAPP_DATABASE_URL)),)
DB_TARGET := db-private
else
DB_TARGET := db-external
endif

.PHONY: help setup venv db db-private db-external browser vendor run serve stop test lint bench bench-routing bench-live bench-maps bench-faults bench-reports bench-replay bench-scale demo clean

help:
	@echo "make run            set everything up, load the Zouping demo, serve on http://$(HOST):$(PORT)"
	@echo "make test           set everything up, then run the whole test suite"
	@echo "make stop           stop the private PostgreSQL cluster"
	@echo "make bench-routing | bench-live | bench-maps   benchmarks against peers (bench/)"
	@echo "make bench-faults   database restarts and a worker kill under load (bench/bench_faults.py)"
	@echo "make bench-reports  report API and XLSX export on 3 years of history (bench/bench_reports.py)"
	@echo "make bench-scale    nearest units on a 2M-arc graph vs RoutingKit CCH and pgRouting (bench/bench_scale.py)"
	@echo "make bench-replay   the replay of the demo year: baseline and squadrons alone (bench/bench_replay.py)"
	@echo "make lint           ruff and the import contracts (lint-imports)"
	@echo "make vendor         re-fetch the vendored map assets (web/static/vendor) from npm"

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv .venv
	@$(PIP) install -q --upgrade pip
	@$(PIP) install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

db-private: $(STAMP)
	@scripts/pgcluster.sh ensure
	@$(GISAPP) db upgrade

db-external: $(STAMP)
	@$(GISAPP) db upgrade

db: $(DB_TARGET)

# Debian's headless chromium for the browser tests (installed as root when missing).
browser:
	@scripts/browser.sh ensure

setup: venv db browser
	@$(GISAPP) caller-key init

# Re-fetch the vendored browser assets (web/static/vendor, committed) from npm / PyPI.
vendor: venv
	@$(PY) scripts/vendor_assets.py

# Peers the benchmarks compare against (pyproject's `bench` extra: tipg for bench-maps, routingkit-cch for bench-scale).
$(BENCH_STAMP): pyproject.toml $(STAMP)
	@$(PIP) install -q -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

run: setup
	@$(GISAPP) load-demo --if-empty
	@$(GISAPP) user demo-accounts
	@echo "serving on http://$(HOST):$(PORT)  (gunicorn, $(WORKERS) workers x $(THREADS) threads)"
	@exec .venv/bin/gunicorn --bind $(HOST):$(PORT) --workers $(WORKERS) --threads $(THREADS) \
	    --worker-class gthread --timeout 120 --graceful-timeout 5 --access-logfile - wsgi:app

stop:
	@scripts/pgcluster.sh stop

test: setup lint
	@$(PY) -m pytest $(PYTEST_ARGS)

# ruff, and the import contracts of pyproject's [tool.importlinter] (dependencies point one way)
lint: venv
	@.venv/bin/ruff check .
	@.venv/bin/lint-imports pyproject.toml

bench: bench-routing bench-live bench-maps

bench-routing: setup
	@$(PY) bench/bench_routing.py

bench-live: setup
	@$(PY) bench/bench_live.py

bench-maps: setup $(BENCH_STAMP)
	@$(PY) bench/bench_maps.py

# Three years of county history (~120,000 incidents) in its own database (gisapp_bench_reports).
bench-reports: setup
	@$(PY) bench/bench_reports.py

# The demo year replayed under the baseline and "squadrons alone" (issue 15), on this checkout's demo.
bench-replay: setup
	@$(GISAPP) load-demo --if-empty
	@$(PY) bench/bench_replay.py

# Nearest units on a large graph (a synthetic 2.1M-arc grid; SCALE_ARGS="--source db --db-url ..." for
# the province database) against RoutingKit's CCH and pgRouting (its own database, gisapp_bench_scale).
bench-scale: setup $(BENCH_STAMP)
	@$(PY) bench/bench_scale.py $(SCALE_ARGS)

# Its own throwaway PostgreSQL (var/bench_faults), stopped twice, and its own gunicorn.
bench-faults: setup
	@$(PY) bench/bench_faults.py

clean: stop
	rm -rf var .venv
