# `make test` builds the virtual environment from nothing and runs the whole suite.
# Another of the supported Pythons (3.10 to 3.13) gets its own venv: `make test PYTHON=python3.12` uses .venv-python3.12
PYTHON ?= python3.11
VENV ?= $(if $(filter python3.11,$(PYTHON)),.venv,.venv-$(notdir $(PYTHON)))
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OPENUNMIX := openunmix==1.3.0

.PHONY: venv test system-deps bench lock clean example demo-data demo-models docs

# The open-unmix reference goes to $(VENV)/reference, off the venv's sys.path and bin/ (its own `umx`
# script must not replace ours); tests/conftest.py puts that folder on sys.path. --no-deps: its
# torchaudio dependency has no CPU build, and the tests stub that import. An older venv may still
# hold it in site-packages: uninstalling it first also takes its `umx` script away before ours goes in.
$(STAMP): pyproject.toml setup.py requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip uninstall -q -y openunmix 2>/dev/null || true
	$(BIN)/pip install -q -c requirements/constraints.txt -e '.[test]'
	$(BIN)/pip install -q --no-deps --upgrade --target $(VENV)/reference $(OPENUNMIX)
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
	$(BIN)/python bench/data_throughput.py
	$(BIN)/python bench/segmenting.py
	$(BIN)/python bench/long_file.py
	$(BIN)/python bench/pipeline_throughput.py --long-minutes 60

# Refresh the pinned set after changing the dependencies in pyproject.toml: each supported Python's pip
# resolves '.[test]' (nothing installed), keeping the current pins where that Python has them.
LOCK_PYTHONS ?= python3.10 python3.11 python3.12 python3.13
lock: venv
	$(BIN)/python requirements/lock.py $(LOCK_PYTHONS)

# API documentation from the docstrings (pdoc) into docs/api/ (not committed); fails on a broken
# reference or a public name without a docstring
docs: venv
	$(BIN)/python docs/build_api.py docs/api

clean:
	rm -rf $(VENV) .pytest_cache docs/api

# the README's first command: the catalog job (DirectRunner) with the shipped demo model on the bundled songs
example: venv
	$(BIN)/python -m pipelines.separate_catalog --input 'examples/audio/*' --output example_output --codec wav
	@echo "stems: example_output/<song>/<stem>.wav, records example_output/<song>/separation.json, run summary example_output/_runs/"

# --- the shipped demo models (umx_core/models/demo-*) --------------------------------------
# Renders General MIDI arrangements through fluidsynth (64 train/valid + 10 test tracks of 20 s,
# 44.1 kHz, seed 2026), trains demo-5stems and demo-2stems on them, evaluates on the test tracks
# and copies the exported separators into the package. About 2 h on 2 CPU cores.
DEMO := build/demo
DEMO_SEED := 2026
SOUNDFONT_DEPS := fluidsynth fluid-soundfont-gm

$(DEMO)/data/%/.done: | venv
	@command -v fluidsynth >/dev/null || { apt-get update -qq && apt-get install -y -qq $(SOUNDFONT_DEPS) >/dev/null; }
	$(BIN)/python -m training.synthesize --renderer fluidsynth --out $(DEMO)/data/$* --tracks 64 --test-tracks 10 \
		--duration 20 --rate 44100 --seed $(DEMO_SEED) \
		--targets $(if $(filter 5stems,$*),vocals bass drums guitar other,vocals accompaniment)
	touch $@

demo-data: $(DEMO)/data/5stems/.done $(DEMO)/data/2stems/.done

demo-model-%: $(DEMO)/data/%/.done system-deps
	$(BIN)/python -m training.train --profile demo-$* --root $(DEMO)/data/$* --output $(DEMO)/runs/demo-$*
	$(BIN)/python -m training.evaluate --model $(DEMO)/runs/demo-$*/separator --root $(DEMO)/data/$* \
		--split test --baselines --out $(DEMO)/runs/demo-$*/eval
	rm -rf umx_core/models/demo-$* && mkdir -p umx_core/models
	cp -r $(DEMO)/runs/demo-$*/separator umx_core/models/demo-$*
	cp $(DEMO)/runs/demo-$*/eval/summary.json umx_core/models/demo-$*/evaluation.json

demo-models: demo-model-5stems demo-model-2stems
