# Two commands on a fresh Debian machine with Python 3.11:
#   make demo   - a simulated city of 3 districts x 4 schools, hub API on http://127.0.0.1:8000
#   make test   - the full test suite against real Mosquitto, pymodbus, SQLite and PostgreSQL
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench venv mosquitto chromium socat clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (found " + sys.version.split()[0] + ")")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# Tests start their own Mosquitto processes; install the Debian package when it is missing.
mosquitto:
	@if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing mosquitto with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients; \
	  else \
	    echo "mosquitto is missing: run 'sudo apt-get install mosquitto mosquitto-clients' and retry" >&2; exit 1; \
	  fi; \
	fi

# Browser tests drive Debian's Chromium through Playwright; install the package when it is missing,
# with a Chinese font so that the dashboard's screenshots show its Chinese labels.
chromium:
	@if [ ! -x /usr/bin/chromium ] || [ -z "$$(fc-list :lang=zh 2>/dev/null)" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium and fonts-wqy-microhei with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei; \
	  else \
	    echo "chromium or a Chinese font is missing: run 'sudo apt-get install chromium fonts-wqy-microhei' and retry" >&2; exit 1; \
	  fi; \
	fi

# The RTU tests run Modbus RTU through a pseudo-terminal pair that socat makes.
socat:
	@if ! command -v socat >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing socat with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq socat; \
	  else \
	    echo "socat is missing: run 'sudo apt-get install socat' and retry" >&2; exit 1; \
	  fi; \
	fi

demo: venv
	PATH="$$PATH:/usr/sbin" $(BIN)/campus demo

# pytest exits 5 when it collected no tests: that must fail, not pass silently.
test: venv mosquitto chromium socat
	@PATH="$$PATH:/usr/sbin" $(BIN)/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: venv mosquitto socat
	@for script in bench/*.py; do echo "== $$script"; PATH="$$PATH:/usr/sbin" $(BIN)/python $$script || exit 1; done

clean:
	rm -rf var test-artifacts .pytest_cache .mypy_cache .ruff_cache
