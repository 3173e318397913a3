# Two commands: `make run` (the portal on the embedded default, with demo data)
# and `make test` (every test). Both set up what they need first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INI ?= development.ini

.PHONY: run test setup migrate demo lint format bench clean

$(BIN)/activate: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[testing]'
	touch $(BIN)/activate

setup: $(BIN)/activate

migrate: setup
	mkdir -p var
	$(BIN)/ijp-admin $(INI) migrate

demo: migrate
	$(BIN)/ijp-admin $(INI) load-demo

run: demo
	@command -v bwrap >/dev/null || { echo "bubblewrap is not installed: apt-get install bubblewrap (jobs run in its sandbox; see the README)"; exit 1; }
	@url=$$($(BIN)/ijp-admin $(INI) url) || exit 1; \
	echo ""; \
	echo "  ijpweb is starting on $$url  ([server:main] and ijp.prefix of $(INI))"; \
	echo "  demo logins: alice / alice-demo (staff), bob / bob-demo, carol / carol-demo"; \
	echo ""
	$(BIN)/pserve $(INI)

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	tests/run.sh

# every benchmark, on SQLite then a throw-away PostgreSQL (bench/README.md)
bench: setup
	bench/run.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf var .pytest_cache .hypothesis test-results
