# One entry point for set-up, running and testing. `make run` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run test lint format bench clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

## The whole product on the embedded defaults (or DATABASE_URL / REDIS_URL when set):
## web on 127.0.0.1:8000, SMTP door on 127.0.0.1:2525, bounce door on 127.0.0.1:2526, a Celery worker
## and beat; webhooks may go to local receivers. Ctrl-C stops all, and is not an error: the shell
## waits for honcho to stop every process (trap), and honcho's 130 for SIGINT counts as success.
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	trap : INT; DEBUG=$${DEBUG:-true} WEBHOOK_ALLOW_PRIVATE_ADDRESSES=$${WEBHOOK_ALLOW_PRIVATE_ADDRESSES:-true} \
	  PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho -f Procfile.dev start || [ $$? -eq 130 ]

## Every test, on the configured database and broker.
test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf var/ staticfiles/

## Every benchmark of bench/ at a small scale, a few minutes (BENCH_ARGS="--scale large" for
## 1,000,000 messages), on the PostgreSQL server of DATABASE_URL; writes docs/BENCHMARKS.md.
bench: install
	BENCH_ARGS="$(BENCH_ARGS)" $(BIN)/python bench/run.py $(BENCH_ARGS)
