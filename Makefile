# The two commands a new user needs are `make run` and `make test`; everything else here
# is what they are made of. Python 3.11 and make are the prerequisites, and for `make test`
# Python 3.12 too, the one MWAA runs (PYTHON_MWAA).

PYTHON ?= python3.11
VENV ?= .venv
CHECKOV_VENV ?= .venv-checkov
BIN := $(VENV)/bin
# The Airflow MWAA runs (infra/modules/orchestration's airflow_version), tested in a second
# virtualenv that stands for MWAA's image: its Python, its packages (infra/mwaa/<version>/),
# then the bundle installed as MWAA installs it. constraints-mwaa.txt is the lock for it.
MWAA_VENV ?= .venv-mwaa
MWAA_AIRFLOW := $(shell sed -n 's/^apache-airflow==//p' constraints-mwaa.txt)
MWAA_FILES := infra/mwaa/$(MWAA_AIRFLOW)
# MWAA's /usr/local/airflow, where `make test-mwaa` lays out what MWAA syncs from the bucket.
MWAA_HOME_DIR := .local/mwaa-home
PLUGINS_ZIP := infra/.build/plugins.zip
# MWAA's Python (versions.txt). pyenv's shim only answers for the versions selected, so a
# 3.12 that pyenv has installed is found by asking pyenv for it by version.
PYTHON_MWAA ?= python3.12
PYTHON_MWAA_BIN = $(shell $(PYTHON_MWAA) -c 'import sys; print(sys.executable)' 2>/dev/null \
  || PYENV_VERSION=$$(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.|$$)' | tail -n 1) \
     pyenv which $(PYTHON_MWAA) 2>/dev/null)
UV_VERSION := 0.13.9
CHECKOV_VERSION := 3.3.30
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv venv-mwaa system-deps run stop test test-deps test-mwaa lint fmt bench lock env plugins-zip clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# uv installs the ~260 pinned packages in seconds; plain pip would take minutes.
# requirements-local.txt is the bundle's requirements.txt plus the Airflow it runs on here.
$(BIN)/.installed: requirements.txt requirements-local.txt constraints.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-local.txt -e '.[test]'
	touch $@

venv: $(BIN)/.installed  ## Create the virtualenv with every pinned dependency

# The bundle as MWAA installs it. A fresh virtualenv on MWAA's Python gets MWAA's image
# (preinstalled.txt, from PyPI: this step stands for the image), then exactly the
# requirements Terraform uploads (infra/mwaa/requirements.txt) installed with
# safe-pip-install's command, offline from the wheels in plugins.zip, timed against MWAA's
# 9 minutes; then the test tooling, which MWAA never installs, at the lock's versions.
# Rebuilt only when one of its inputs changes (a new .venv alone does not rebuild it), so CI
# reinstalls nothing while the requirements and MWAA's files stay the same.
$(MWAA_VENV)/.installed: infra/mwaa/requirements.txt constraints-mwaa.txt $(MWAA_FILES)/preinstalled.txt \
  $(MWAA_FILES)/mwaa_essential_constraints.txt $(PLUGINS_ZIP) pyproject.toml | $(BIN)/.installed
	@test -n "$(PYTHON_MWAA_BIN)" || { echo "No $(PYTHON_MWAA): MWAA $(MWAA_AIRFLOW) runs Python 3.12; install it (pyenv install 3.12) or pass PYTHON_MWAA=/path/to/python3.12." >&2; exit 1; }
	@$(PYTHON_MWAA_BIN) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' || { echo "$(PYTHON_MWAA_BIN) is not Python 3.12, which MWAA $(MWAA_AIRFLOW) runs: pass PYTHON_MWAA=/path/to/python3.12." >&2; exit 1; }
	rm -rf $(MWAA_VENV) && $(PYTHON_MWAA_BIN) -m venv $(MWAA_VENV)
	@start=$$(date +%s); \
	$(BIN)/uv pip install --quiet --no-deps --python $(MWAA_VENV)/bin/python -r $(MWAA_FILES)/preinstalled.txt \
	  && echo "MWAA's image in $(MWAA_VENV): $$(( $$(date +%s) - start )) s"
	$(BIN)/python infra/scripts/mwaa_requirements.py install --python $(MWAA_VENV)/bin/python \
	  --plugins-zip $(PLUGINS_ZIP) --root $(MWAA_HOME_DIR)
	$(BIN)/uv pip install --quiet --python $(MWAA_VENV)/bin/python -c constraints-mwaa.txt -e '.[test]'
	touch $@

venv-mwaa: $(MWAA_VENV)/.installed  ## Create the virtualenv of MWAA's image with the bundle installed as MWAA does

# checkov pins old boto3/botocore/packaging that would break the amazon provider,
# so it lives in a virtualenv of its own and is only ever run as a command.
$(CHECKOV_VENV)/.installed:
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION)
	$(CHECKOV_VENV)/bin/uv pip install --quiet --python $(CHECKOV_VENV)/bin/python checkov==$(CHECKOV_VERSION)
	touch $@

# Debian packages some tests drive: docker-compose (validates docker-compose.yaml without an
# engine) and headless Chromium (the UI test). Installed when missing and we are root; the
# tests that need them skip with the reason otherwise.
SYSTEM_PACKAGES := docker-compose chromium chromium-driver
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/dev/null; \
	  else echo "not installing$$missing (needs root and apt-get); the tests that need them will skip"; fi; \
	fi

run: venv  ## Run the platform on the embedded default (local lake, MLflow, Airflow)
	$(BIN)/mlplatform run

stop: venv  ## Stop every process `make run` started
	$(BIN)/mlplatform stop

# lint-imports checks the package's layers (contracts in pyproject.toml); mypy types the package (strict on core/).
# pytest runs in $(PYTEST_WORKERS) processes (pytest-xdist; each test file whole in one of
# them, so a file's module fixtures start once; PYTEST_WORKERS=0 runs it in this process):
# much of the suite waits on schedulers, servers and subprocesses (more processes would
# not help on 2 cores: with two, the long files keep both cores busy).
# MWAA's half (test-mwaa: its virtualenv built, mostly downloads and file copies, then its
# tests) runs beside the checks and pytest, not after them. Its output goes to
# $(MWAA_TEST_LOG), printed once both are done, so the two never interleave; a failure of
# either fails the target. (SUBMAKE, not $$(MAKE), in that recipe line: make runs a line
# naming $$(MAKE) even under `make -n`, which would run the whole suite.)
PYTEST_WORKERS ?= 2
MWAA_TEST_LOG := .local/test-mwaa.log
SUBMAKE := $(MAKE)
# What the tests need installed; independent of each other (mostly downloads), so
# `make -j3 test-deps` prepares them side by side, as .ci/run does on a fresh clone.
test-deps: venv $(CHECKOV_VENV)/.installed system-deps

test: test-deps  ## Run the whole test suite
	@mkdir -p $(dir $(MWAA_TEST_LOG))
	@echo "make test-mwaa > $(MWAA_TEST_LOG) 2>&1 &"
	@$(SUBMAKE) --no-print-directory test-mwaa > $(MWAA_TEST_LOG) 2>&1 & mwaa=$$!; \
	trap 'pkill -TERM -P $$mwaa; kill $$mwaa 2>/dev/null; exit 130' INT TERM; \
	set -x; \
	$(BIN)/ruff check . && $(BIN)/lint-imports && $(BIN)/mypy \
	  && $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS); \
	{ checks=$$?; set +x; } 2>/dev/null; \
	echo "waiting for make test-mwaa"; wait $$mwaa; mwaa_tests=$$?; \
	echo "----- make test-mwaa ($(MWAA_TEST_LOG)) -----"; cat $(MWAA_TEST_LOG); \
	test $$checks -eq 0 && test $$mwaa_tests -eq 0

# The DAG integrity tests and a whole-DAG run of every stage (marker airflow_compat) on
# MWAA's Python, image and Airflow, with the bundle installed as MWAA installs it.
test-mwaa: $(MWAA_VENV)/.installed  ## Run the Airflow compatibility tests on MWAA's image and Airflow
	$(MWAA_VENV)/bin/pytest -m airflow_compat -p no:cacheprovider
lint: venv  ## Lint, check formatting, the package's layers and its types (strict on core)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

fmt: venv  ## Format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: venv  ## Print the performance figures (see bench/README.md)
	$(BIN)/python bench/run_all.py

lock: venv  ## Re-resolve constraints.txt and constraints-mwaa.txt, and render MWAA's requirements
	mkdir -p .local && grep -v '^-[rc] ' requirements-local.txt > .local/requirements-local.in
	grep -v '^-c ' requirements.txt > .local/requirements.in
	# Seeded with today's pins, so a new requirement moves nothing else.
	grep -v '^#' constraints.txt > .local/constraints.txt
	$(BIN)/uv pip compile .local/requirements.in .local/requirements-local.in pyproject.toml --extra test \
	  --python-version 3.11 --no-header --no-annotate --no-emit-package mlplatform -o .local/constraints.txt
	{ echo '# Full resolved dependency set for Python 3.11, generated by `make lock` from requirements.txt,'; \
	  echo '# requirements-local.txt and the test extra in pyproject.toml.'; \
	  echo '# Do not edit by hand.'; cat .local/constraints.txt; } > constraints.txt
	# MWAA's lock: its Python, with its essential constraints and its image's versions as hard
	# pins (uv pip compile --python-version 3.12 -c mwaa_essential_constraints.txt), and the
	# requirements MWAA installs rendered from it (infra/mwaa/requirements.txt).
	$(BIN)/python infra/scripts/mwaa_requirements.py lock --uv $(BIN)/uv

env: venv  ## Write .env for docker-compose with generated passwords and tokens (never overwrites)
	$(BIN)/python -m mlplatform.dev.commands env-file

# The plugins and the wheels MWAA installs the bundle's requirements from (downloaded once
# into infra/.build/wheels/).
PLUGIN_SOURCES := $(shell find plugins -type f ! -name '*.py[co]' ! -name README.md ! -path '*/__pycache__/*' 2>/dev/null)
$(PLUGINS_ZIP): $(PLUGIN_SOURCES) infra/mwaa/requirements.txt constraints-mwaa.txt infra/scripts/plugins_zip.py
	$(PYTHON) infra/scripts/plugins_zip.py

plugins-zip:  ## Build infra/.build/plugins.zip (plugins and MWAA's wheels), which terraform plan uploads
	$(PYTHON) infra/scripts/plugins_zip.py

clean: stop  ## Remove everything the embedded default created (lake, MLflow, Airflow home)
	rm -rf .local

.PHONY: rehearse-aws
rehearse-aws: venv  ## terraform apply of infra/envs/dev against moto over TLS, then the first loop steps in AWS mode
	$(BIN)/python infra/scripts/rehearse_aws.py
