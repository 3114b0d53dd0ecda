# Two commands for a new user: `make run` and `make test`. Everything lands in .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bench-radius bench-portal bench-reports bench-monitor bench-faults fuzz clean tools catalogs

$(STAMP): setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(STAMP)

# gettext catalogs: Spanish is the source language; English is compiled from portal/translations.
catalogs: $(STAMP)
	@$(BIN)/pybabel compile -d portal/translations >/dev/null

# A new user sees full reports at once: two weeks of simulated visits, the first time only.
run: $(STAMP) catalogs
	$(BIN)/conecta init --demo
	$(BIN)/conecta simulate --if-empty --people 120 --days 14
	$(BIN)/conecta run

# radclient (Debian's freeradius-utils) is the independent RADIUS client of the tests, Debian's
# chromium drives the browser tests, redis-sentinel watches the failover test's Redis pair, and
# Debian's openNDS (with what it needs but does not declare: dnsmasq, iptables, nftables, php-cli for FAS level 2) is the real gateway of tests/test_opennds_real.py
# (dnsmasq-base: the program without a service; the opennds service is kept from starting, by a
# policy-rc.d for the install, and disabled: the test runs openNDS in namespaces of its own).
# Installed when missing and possible (root + apt); the tests that need them skip with a reason otherwise.
tools:
	@missing=""; command -v radclient >/dev/null 2>&1 || missing="$$missing freeradius-utils"; \
	  command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	  command -v redis-sentinel >/dev/null 2>&1 || missing="$$missing redis-sentinel"; \
	  command -v opennds >/dev/null 2>&1 || missing="$$missing opennds"; \
	  command -v dnsmasq >/dev/null 2>&1 || missing="$$missing dnsmasq-base"; \
	  command -v iptables >/dev/null 2>&1 || missing="$$missing iptables"; \
	  command -v nft >/dev/null 2>&1 || missing="$$missing nftables"; \
	  command -v php >/dev/null 2>&1 || missing="$$missing php-cli"; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      held=""; if [ ! -e /usr/sbin/policy-rc.d ]; then held=1; \
	        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; fi; \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
	        || echo "note: could not install$$missing; their tests will be skipped"; \
	      [ -z "$$held" ] || rm -f /usr/sbin/policy-rc.d; \
	      case "$$missing" in *opennds*) systemctl disable opennds >/dev/null 2>&1 || true;; esac; \
	    else echo "note:$$missing not installed; their tests will be skipped"; fi; fi

# axe-core (npm) for the accessibility tests in headless Chromium; tests/e2e/node_modules is git-ignored.
# Without npm the axe test is skipped with a reason.
AXE := tests/e2e/node_modules/axe-core/axe.min.js
$(AXE):
	@command -v npm >/dev/null 2>&1 && npm install --prefix tests/e2e --no-save --no-audit --no-fund axe-core@4 >/dev/null \
	  || echo "note: axe-core not installed (npm missing or offline); the accessibility test will be skipped"

test: $(STAMP) tools catalogs $(AXE)
	$(BIN)/ruff check .
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# The four benchmarks of the issues' figures (PostgreSQL and Redis on 127.0.0.1, see bench/*.md):
# RADIUS against FreeRADIUS and bare pyrad, the portal under gunicorn, the reports at 5M records.
bench: bench-radius bench-portal bench-reports bench-monitor

bench-radius: $(STAMP)
	$(BIN)/python bench/run.py

bench-portal: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get install -y -qq wrk >/dev/null 2>&1; } || echo "note: wrk missing (apt-get install wrk)"
	$(BIN)/python bench/portal_bench.py

bench-reports: $(STAMP)
	$(BIN)/python bench/reports_bench.py

# One monitor probing 2,000 access points every 30 s (root: a network namespace makes the outage).
bench-monitor: $(STAMP)
	$(BIN)/python bench/monitor_bench.py

# Faults under load (kill -9 of a worker and of the applier, Redis restarted empty, PostgreSQL and
# Redis stopped for 20 s, the disk full) on a PostgreSQL cluster and a Redis of its own: bench/FAULTS.md.
bench-faults: $(STAMP)
	$(BIN)/python bench/faults_bench.py

clean:
	rm -rf $(VENV) instance .pytest_cache
