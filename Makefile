# `make test` builds the virtual environment from nothing and runs the whole suite.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OPENUNMIX := openunmix==1.3.0

.PHONY: venv test system-deps bench lock clean example

$(STAMP): setup.py requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c requirements/constraints.txt -e '.[test]'
	$(BIN)/pip install -q --no-deps $(OPENUNMIX)
	touch $@

venv: $(STAMP)

# museval imports stempeg, which refuses to import without the ffmpeg program
system-deps:
	@command -v ffmpeg >/dev/null || { apt-get update -qq && apt-get install -y -qq ffmpeg >/dev/null; }

test: venv system-deps
	$(BIN)/python -m pytest tests

bench: venv
	$(BIN)/python bench/separator_speed.py
	$(BIN)/python bench/em_speed.py
	$(BIN)/python bench/memory.py

# refresh the pinned set after changing setup.py
lock: venv
	{ head -2 requirements/constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -v '^openunmix==' | sed 's/+cpu$$//'; } > requirements/constraints.new
	mv requirements/constraints.new requirements/constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache

# the Python API example (README): separate a generated mixture, stems into example_output/
example: venv
	$(BIN)/python examples/api_example.py example_output
