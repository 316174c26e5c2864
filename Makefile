# Options-pricing MLOps platform. `make help` lists the targets.
# Needs only Python 3.11 and pip: uv is installed on first use, then the locked env (uv.lock).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
RUN := $(UV) run --frozen
HOST ?= 127.0.0.1
UI_PORT ?= 5000
ARGS ?=
# an exported MLFLOW_TRACKING_URI (team mode) wins over the local sqlite store, as in configs/mlflow
TRACKING_URI ?= $(or $(MLFLOW_TRACKING_URI),sqlite:///$(CURDIR)/mlflow.db)
SERVE_PORT ?= 3000
APP_PORT ?= 8501
DASHBOARD_PORT ?= 8000
PROM_PORT ?= 9090
NODE_EXPORTER_PORT ?= 9100
# no usage telemetry from MLflow, BentoML or Evidently: nothing leaves 127.0.0.1 (export =false to allow)
export MLFLOW_DISABLE_TELEMETRY ?= true
export BENTOML_DO_NOT_TRACK ?= True
export DO_NOT_TRACK ?= 1

.PHONY: help uv install run fetch validate features train evaluate deploy monitor report schedule daily replay replay-matrix promote rollback history ui serve bento app dashboard test test-fast lint format bench bench-serving bench-accuracy bench-replay clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'
	@echo "  Pass Hydra overrides with ARGS, e.g. make run ARGS='main.days=5 data_format=csv'"

uv: ## Install uv with pip if it is not on PATH
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv>=0.5"

.venv/.synced: uv.lock pyproject.toml | uv
	$(UV) sync --frozen
	@touch $@

install: .venv/.synced ## Create the locked environment in .venv (uv sync --frozen)

run: install ## Run main: fetch -> validate -> features over 60 trading days, then train -> evaluate -> deploy gate (Staging) -> report
	$(RUN) python -m pipeline.main $(ARGS)

fetch: install ## Run data_fetch for one day (ARGS='date=2026-03-02 data_fetch=cboe')
	$(RUN) python -m pipeline.data_fetch $(ARGS)

validate: install ## Run data_validate for one day
	$(RUN) python -m pipeline.data_validate $(ARGS)

features: install ## Run feature_engineer for one day
	$(RUN) python -m pipeline.feature_engineer $(ARGS)

train: install ## Run model_train (ARGS='date=... model_train.max_depth=4'; sweeps: ARGS='-m model_train.max_depth=4,6,8')
	$(RUN) python -m pipeline.model_train $(ARGS)

evaluate: install ## Run model_evaluate: Staging candidate vs Production vs baselines, records the gate verdict
	$(RUN) python -m pipeline.model_evaluate $(ARGS)

deploy: install ## Run model_deploy: the gate (awaiting approval unless model_deploy.auto_promote=true)
	$(RUN) python -m pipeline.model_deploy $(ARGS)

monitor: install ## Run monitor: Production vs its holdout on the newest day (drift + IV errors) -> retrain trigger
	$(RUN) python -m pipeline.monitor $(ARGS)

report: install ## Stakeholder report from the cached artifacts: reports/stakeholder_report.md and .html (+ PNG plots)
	$(RUN) python -m pipeline.generate_report $(ARGS)

schedule: install ## Scheduler in the foreground: the daily flow at 18:00 New York on trading days, catch-up at start (Ctrl-C stops)
	$(RUN) python -m monitoring.scheduler $(ARGS)

daily: install ## The daily flow now for the latest closed trading day (ARGS='date=2026-03-02'); exit 3 if another run holds the lock
	$(RUN) python -m monitoring.scheduler --once $(ARGS)

replay: install ## Market replay of one scenario (default: 60 days, vol shock on day 40, ~14 min; ARGS='replay=shock_early seed=3', configs/replay), scored on the plan's success metrics
	$(RUN) python -m monitoring.replay $(ARGS)

replay-matrix: install ## Every replay scenario x seed -> reports/replay/replay_matrix.{json,md}; resumes (ARGS='scenarios=[shock_early,crush] seeds=[1,2] force=true keep=false'; ~6-14 min a run)
	$(RUN) python -m monitoring.replay_matrix $(ARGS)

promote: install ## Staging -> Production if the gate passed (VERSION=3; FORCE=1 REASON="..." to override)
	$(RUN) python -m pipeline.promote $(if $(VERSION),registry.version=$(VERSION)) $(if $(FORCE),registry.force=true) $(if $(REASON),'registry.reason="$(REASON)"') $(ARGS)

rollback: install ## Restore the previous Production version (REASON="...")
	$(RUN) python -m pipeline.rollback $(if $(REASON),'registry.reason="$(REASON)"') $(ARGS)

history: install ## Promotion/rollback history and the registry's current state
	$(RUN) python -m pipeline.history $(ARGS)

ui: install ## MLflow UI on http://127.0.0.1:5000 (compare runs, see params/metrics/artifacts)
	$(RUN) mlflow ui --backend-store-uri $(TRACKING_URI) --host $(HOST) --port $(UI_PORT)

serve: install ## Pricing service on http://127.0.0.1:3000 (BentoML; POST /price, OpenAPI page at /; SERVE_PORT=...)
	BENTOML_DO_NOT_TRACK=True MLFLOW_TRACKING_URI=$(TRACKING_URI) $(RUN) bentoml serve serving.service:OptionsPricingService --host $(HOST) --port $(SERVE_PORT)

bento: install ## Bento of one registry version (VERSION=3; default: Production) after its offline self-check; then bentoml serve <tag> from any folder
	$(RUN) python -m pipeline.bento $(if $(VERSION),registry.version=$(VERSION)) $(ARGS)

app: install ## Streamlit app on http://127.0.0.1:8501: pricer, smile, registry (needs make serve for prices; APP_PORT=...)
	PRICING_URL=$${PRICING_URL:-http://$(HOST):$(SERVE_PORT)} MLFLOW_TRACKING_URI=$(TRACKING_URI) $(RUN) streamlit run webapp/app.py --server.address $(HOST) --server.port $(APP_PORT) --server.headless true --browser.gatherUsageStats false

dashboard: install ## Evidently UI on http://127.0.0.1:8000: the monitor's daily drift and IV error dashboard
	DO_NOT_TRACK=1 $(RUN) evidently ui --workspace $${EVIDENTLY_WORKSPACE:-$(CURDIR)/reports/evidently_workspace} --host $(HOST) --port $(DASHBOARD_PORT)

.PHONY: prometheus prometheus-install prometheus-check
prometheus-install: ## Prometheus + promtool + node-exporter from Debian's packages into .tools/prometheus (no service; idempotent)
	bash observability/install-prometheus.sh

prometheus: install prometheus-install ## Prometheus on http://127.0.0.1:9090 + node-exporter (:9100, reads reports/metrics): scrapes make serve, the team MLflow server, the pipeline textfile; Ctrl-C stops
	$(RUN) python -m observability.prometheus up --port $(PROM_PORT) --node-exporter-port $(NODE_EXPORTER_PORT) --service $(HOST):$(SERVE_PORT)

prometheus-check: install prometheus-install ## promtool check config + the alert rules' unit tests (observability/prometheus/tests)
	$(RUN) python -m observability.prometheus check

.PHONY: team-up team-down team-status
TEAM_DIR ?= team
TEAM_ARGS ?=
team-up: install ## Team mode: PostgreSQL + SeaweedFS S3 + MLflow server (:5050) on 127.0.0.1, state in team/; prints the MLFLOW_TRACKING_URI to export (TEAM_ARGS='--port mlflow=5051')
	$(RUN) python -m stack.team up --root $(TEAM_DIR) $(TEAM_ARGS)

team-down: install ## Stop the team stack (its data stays in team/ for the next team-up)
	$(RUN) python -m stack.team down --root $(TEAM_DIR)

team-status: install ## Which services of the team stack run
	$(RUN) python -m stack.team status --root $(TEAM_DIR)

# Phase 3: Airflow 3 in its own uv project (orchestration/airflow, own uv.lock); its state in .airflow/
.PHONY: airflow-env airflow crontab
AIRFLOW_PROJECT := orchestration/airflow
AIRFLOW_PORT ?= 8080
AIRFLOW_HOME_DIR ?= $(CURDIR)/.airflow
airflow-env: uv ## Airflow 3.3.2's own environment in orchestration/airflow/.venv (uv sync --frozen from its uv.lock)
	$(UV) sync --frozen --project $(AIRFLOW_PROJECT)

airflow: install airflow-env ## airflow standalone on http://127.0.0.1:8080 with the daily-flow DAG (AIRFLOW_PORT=...; admin password in .airflow/)
	$(RUN) python -m orchestration.task_graph --check
	AIRFLOW_HOME=$(AIRFLOW_HOME_DIR) AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/$(AIRFLOW_PROJECT)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__API__HOST=$(HOST) AIRFLOW__API__PORT=$(AIRFLOW_PORT) \
	AIRFLOW__API__BASE_URL=http://$(HOST):$(AIRFLOW_PORT) \
	AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://$(HOST):$(AIRFLOW_PORT)/execution/ \
	PATH=$(CURDIR)/$(AIRFLOW_PROJECT)/.venv/bin:$$PATH airflow standalone

crontab: install ## Print the phase-1 crontab lines: make daily at 18:00 New York, mon-fri (configs/schedule)
	@$(RUN) python -m orchestration.task_graph --crontab

test: install ## Lint, check the import layers (.importlinter) and run the whole test suite
	$(RUN) ruff check .
	$(RUN) lint-imports
	$(RUN) pytest -q

test-fast: install ## Unit tests only
	$(RUN) pytest -q tests/unit

lint: install ## ruff check + format check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

format: install ## ruff format + autofix
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

bench: install ## Benchmarks quoted in the README (IV solver vs vollib; main wall time; monitor on 1M rows)
	$(RUN) python -m benchmarks.iv_solver
	$(RUN) python -m benchmarks.pipeline_walltime
	$(RUN) python -m benchmarks.monitor

bench-serving: install ## Pricing service vs BentoML batching vs mlflow models serve under wrk (needs make run + make promote; installs wrk into .tools/wrk if absent)
	command -v wrk >/dev/null || bash benchmarks/install-wrk.sh
	OMP_NUM_THREADS=1 $(RUN) python -m benchmarks.serving $(ARGS)

bench-accuracy: install ## Accuracy on both market families side by side (~5 min; ARGS=--shock puts a vol shock in the holdout)
	$(RUN) python -m benchmarks.accuracy $(ARGS)

bench-replay: install ## Replay wall time per simulated day (the default 60-day replay, ~14 min; ARGS='--scenario crush --seed 3'; --peer adds a fault-free one)
	$(RUN) python -m benchmarks.replay $(ARGS)

clean: ## Remove everything the pipeline wrote (data, logs, reports, mlflow.db, artifacts)
	rm -rf data logs reports outputs multirun replay mlflow.db mlruns mlartifacts
