# pli — the two commands a new user needs are `make run` and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
DATA    ?= var
BIN     := $(VENV)/bin
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test install apt-deps lint typecheck pytest clean docs fuzz bench bench-directory bench-smtp bench-vault bench-smime bench-imap

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml deploy/dev/apt-deps.sh | $(BIN)/activate
	bash deploy/dev/apt-deps.sh
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

## make run: install, initialise ./var with the demo directory, print the accounts, serve.
run: install
	$(BIN)/pli init --demo --data-dir $(DATA)
	$(BIN)/pli serve --data-dir $(DATA)

apt-deps:
	bash deploy/dev/apt-deps.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

pytest: install apt-deps
	$(BIN)/pytest

## make test: everything the tests need (apt included), then ruff, the import contracts,
##   mypy and pytest (all of it, one worker per core: see pyproject.toml;
##   `pytest -m "not slow"` leaves out the end-to-end tests, `-n 0` runs in one process).
test: install apt-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest

## make docs: regenerate docs/configuration.md from the settings models' docstrings
##   (the sections in gateway/base/sections.py, the top-level keys on Settings in
##   gateway/base/config.py); make test fails while it is out of date.
docs: install
	$(BIN)/pli config describe --format markdown > docs/configuration.md.tmp
	mv docs/configuration.md.tmp docs/configuration.md

## make fuzz: the hypothesis property tests with fresh random draws, each test's full number
##   of examples, FUZZ_ROUNDS times (make test draws a quarter of them, the same every run,
##   so CI stays quick and reproducible: tests/support/profiles.py).
FUZZ_ROUNDS ?= 5
PROPERTY_TESTS = $(shell grep -rl --include='*.py' '@given' tests)
fuzz: install apt-deps
	for i in $$(seq $(FUZZ_ROUNDS)); do HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q $(PROPERTY_TESTS) || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

## make bench: every benchmark, medians of 3 (results in bench-results/):
##   bench-directory  1M-row SQLite import, cached lookups, uncached LDAP lookups vs raw slapd
##   bench-smtp       SMTP ingest vs Postfix→Dovecot (peer kit in tests/bench/peers)
##   bench-vault      encrypted put/get vs raw minio on one S3 server, audit appends, 1 GB RSS
##   bench-smime      S/MIME sign+encrypt, decrypt+verify of 1 MB vs raw cryptography primitives
##   bench-imap       IMAP sessions/s and bodies/s vs Dovecot (peer kit), RSS with idle clients
bench: bench-directory bench-smtp bench-vault bench-smime bench-imap

bench-imap: install
	$(BIN)/python tests/bench/imap_bench.py $(IMAP_BENCH_ARGS)

bench-smime: install
	$(BIN)/python tests/bench/smime_bench.py $(SMIME_BENCH_ARGS)

bench-vault: install
	$(BIN)/python tests/bench/vault_bench.py $(VAULT_BENCH_ARGS)

bench-directory: install
	$(BIN)/python tests/bench/directory_bench.py $(DIRECTORY_BENCH_ARGS)

bench-smtp: install
	$(BIN)/python tests/bench/smtp_ingest.py $(BENCH_ARGS)
