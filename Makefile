# pyjuicefs: `make install` sets up the CLI, `make test` runs the whole suite against real servers.
# Both replace pyfuse3 with the patched build of scripts/build-pyfuse3.sh (file locks, fallocate).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
# Re-run the Python install only when the declared dependencies change.
DEPS_STAMP := build/.deps-stamp

.PHONY: all install system-deps python-deps test lint clean

all: install

# As root, also make the state dir the README's first volume uses (SQLite does not create directories).
install: system-deps
	$(PIP) install -e '.[all]'
	PYTHON=$(PYTHON) bash scripts/build-pyfuse3.sh
	@if [ "$$(id -u)" = 0 ]; then mkdir -p /var/lib/pyjuicefs; fi

system-deps:
	bash scripts/install-deps.sh

$(DEPS_STAMP): pyproject.toml
	$(PIP) install -q -e '.[all,test]'
	@mkdir -p $(dir $@) && touch $@

python-deps: $(DEPS_STAMP)

test: system-deps python-deps
	PYTHON=$(PYTHON) bash scripts/build-pyfuse3.sh
	$(PYTHON) -m pytest tests -q

lint:
	$(PYTHON) -m ruff check src tests  # needs `pip install ruff`

clean:
	rm -rf build .pytest_cache .hypothesis
