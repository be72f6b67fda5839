# `make run` and `make test` work on a fresh clone: they create .venv if it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the report's browser tests drive the system Chromium (the OS package; Playwright never downloads one)
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test install browser bench calibrate clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the ray extra: tests/test_ray.py runs the explorer and the planner on a local Ray cluster
	$(BIN)/python -m pip install -q -e '.[test,ray]'
	# the torch extra for the emulate tests: torch pinned to the CPU build that lies on this
	# machine's disk (never a multi-GB CUDA download); the tests skip when it is unavailable
	$(BIN)/python -m pip install -q 'torch==2.13.0' 'transformers>=5.0,<6' || echo "torch extra unavailable: emulate tests will skip"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/seedchip run --report seedchip-run.html

browser:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }
	@test -x $(CHROMIUM) || { echo "$(CHROMIUM) is missing: install the OS package chromium"; exit 1; }

# SEEDCHIP_REQUIRE_BROWSER=1: the browser tests fail rather than skip when Chromium or Playwright is missing
test: $(STAMP) browser
	SEEDCHIP_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -m "slow or not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_oracle.py

# Re-fit the shipped H100 calibration from the measured kernel tables in ../shared/data.
calibrate: $(STAMP)
	$(BIN)/seedchip calibrate fit-tables ../shared/data/calibration/h100_sxm --chip h100-sxm \
		--out src/seedchip/perf/calibrations/h100-sxm.yaml

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
