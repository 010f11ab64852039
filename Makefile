# The two commands (see README):
#   make demo   set up .venv, import the demo city, serve it on http://127.0.0.1:5000
#               with live sensors (broker + `oup ingest` + `oup simulate`)
#   make test   set up .venv and the services the tests use, run the whole suite
#   make test-fast  the in-process tests only (seconds; no services)
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
export OUP_DATA_DIR ?= $(CURDIR)/data

.PHONY: demo test test-fast venv services clean

# Python >= 3.12: python3 if it is new enough, else python3.13/3.12 on PATH, else pyenv's.
$(PY):
	@set -e; \
	for c in python3 python3.13 python3.12 $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python 2>/dev/null | sort -r); do \
	  if command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	    echo "using $$($$c --version) ($$(command -v $$c))"; $$c -m venv $(VENV); exit 0; fi; \
	done; \
	echo "error: OUP needs Python >= 3.12 and none was found (tried python3, python3.13, python3.12, ~/.pyenv/versions/3.1x)." >&2; \
	echo "Install one (e.g. 'apt-get install python3.12' or 'pyenv install 3.12') and run make again." >&2; \
	exit 1

# Installing runs once, and again only when what it installs from has changed: the
# distribution (pyproject.toml) or the viewer's and the pages' npm locks. The stamp lives
# in the venv, so a new venv (`make clean`) installs afresh. `make venv` is the same step.
INSTALLED := $(VENV)/.installed

venv: $(INSTALLED)

$(INSTALLED): pyproject.toml oup/viewer/package-lock.json oup/web/package-lock.json | $(PY)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[test]'
	@# the store's compiled loops (tiles, GeoJSON), once per machine into numba's cache
	@$(PY) -m oup.store.compiled
	@if command -v npm >/dev/null; then for d in oup/viewer oup/web; do \
	  (cd $$d && npm ci --no-audit --no-fund --loglevel=error) || exit 1; done; \
	else echo "note: npm not found: the 3D viewer (/viewer) and the HTML pages need CesiumJS, Bootstrap and MapLibre from npm (apt-get install npm, then rm $@ and make again)"; fi
	@touch $@

demo: venv
	$(VENV)/bin/oup catalog check
	$(VENV)/bin/oup import
	$(VENV)/bin/oup tile
	$(VENV)/bin/oup serve --host 127.0.0.1 --port 5000 --live

# Debian packages the integration tests drive (real clients, real services), and the
# JavaScript clients (glTF validator, loaders.gl) from the npm registry.
services:
	@missing=""; command -v ogrinfo >/dev/null || missing="$$missing gdal-bin"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v node >/dev/null || missing="$$missing nodejs npm"; \
	command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v mosquitto_pub >/dev/null || missing="$$missing mosquitto-clients"; \
	ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1 || missing="$$missing postgresql postgresql-postgis postgis"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "error: the tests need:$$missing (sudo apt-get install$$missing)" >&2; exit 1; fi; fi
	@# QGIS as a GIS user has it (PyQGIS, headless), without the desktop it recommends
	@[ -f /usr/lib/python3/dist-packages/qgis/core/__init__.py ] || \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq --no-install-recommends python3-qgis >/dev/null; \
	  else echo "error: the tests need python3-qgis (sudo apt-get install python3-qgis)" >&2; exit 1; fi
	@cd tests/js && npm ci --no-audit --no-fund --loglevel=error
	@# the Compose Specification schema, to check docker-compose.yml (the wheel carries it)
	@[ -f tests/.cache/docker_compose-1.29.2-py2.py3-none-any.whl ] || \
	  $(PY) -m pip download -q --no-deps -d tests/.cache docker-compose==1.29.2

test: venv services
	$(PY) -m pytest -q -p no:cacheprovider

# the in-process layer (no server, no services): parser, checks, policy, config, SQL
test-fast: venv
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

clean:
	rm -rf $(VENV) data
