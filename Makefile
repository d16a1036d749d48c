# Report Platform: `make run` and `make test` do all the set-up on a machine with Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | md5sum | cut -c1-12)
PYTEST_ARGS ?=
# Test processes (pytest-xdist, one test file per process at a time; each starts its own stand-in MongoDB and
# redis-server, or uses its own test database on MONGODB_URI). Tests clear Redis, so with REDIS_URL set the suite
# runs in one process. `make test PYTEST_WORKERS=0` runs everything in one process.
PYTEST_WORKERS ?= $(if $(REDIS_URL),0,2)

.PHONY: run test lint format bench install clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m report_platform.devstack

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) lint
	DJANGO_SETTINGS_MODULE=report_platform.settings.test $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --cov --cov-branch --cov-report=term:skip-covered \
		$(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) var/static .coverage htmlcov
