# The product's front door: `make demo` runs the example shop, `make test` the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: venv demo demo-data test lint format bench messages clean-demo

$(STAMP): setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s); run make PYTHON=python3.11 ..." % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=68" wheel
	$(PY) -m pip install --quiet -e ".[wagtail,test,demo]"
	@touch $(STAMP)

venv: $(STAMP)

## Migrate the embedded SQLite database, load the demo data (once) and serve the shop.
demo: demo-data
	@echo "Serving the example shop at http://$(HOST):$(PORT)/ (shop: /shop/, dashboard: /shop/dashboard/, CMS: /cms/)"
	$(PY) manage.py runserver $(HOST):$(PORT)

demo-data: venv
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo_data

## The whole test suite (PostgreSQL/Redis/browser tests skip without the services,
## unless CI=true, where a skip of theirs is a failure), on every core (pytest-xdist:
## each process gets its own test database). PYTEST_ARGS= runs it in one process.
PYTEST_ARGS ?= -n auto --maxprocesses=4 --dist load
test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: venv
	$(PY) -m bench all

## Refresh the .po files after changing user-visible text, then compile them.
messages: venv
	cd oscar_loyalty && ../$(PY) ../manage.py makemessages -l zh_Hans -l en --no-obsolete
	cd wagtail_members && ../$(PY) ../manage.py makemessages -l zh_Hans -l en --no-obsolete
	$(PY) manage.py makemessages -l zh_Hans -l en --no-obsolete --ignore=.venv \
		--ignore=oscar_loyalty --ignore=wagtail_members --ignore=tests --ignore=bench \
		--ignore=var --ignore=build
	$(PY) manage.py compilemessages --ignore=.venv

clean-demo:
	rm -rf var/db.sqlite3 var/db.sqlite3-wal var/db.sqlite3-shm var/media
