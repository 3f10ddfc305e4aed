# `make test` builds the virtual environment from nothing and runs the whole suite.
# Another of the supported Pythons (3.10 to 3.13) gets its own venv: `make test PYTHON=python3.12` uses .venv-python3.12
PYTHON ?= python3.11
VENV ?= $(if $(filter python3.11,$(PYTHON)),.venv,.venv-$(notdir $(PYTHON)))
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OPENUNMIX := openunmix==1.3.0
# the Hybrid Transformer Demucs reference and what it imports beyond torch; safetensors writes the
# tests' checkpoints in demucs 4.1.0's safetensors form
DEMUCS := demucs==4.1.0 julius==0.2.8 einops==0.8.2 safetensors==0.8.0

.PHONY: venv test system-deps bench lock clean example demo-data demo-models docs

# The open-unmix reference goes to $(VENV)/reference, off the venv's sys.path and bin/ (its own `umx`
# script must not replace ours); tests/conftest.py puts that folder on sys.path. --no-deps: its
# torchaudio dependency has no CPU build, and the tests stub that import. An older venv may still
# hold it in site-packages: uninstalling it first also takes its `umx` script away before ours goes in.
$(STAMP): pyproject.toml setup.py requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip uninstall -q -y openunmix 2>/dev/null || true
	$(BIN)/pip install -q -c requirements/constraints.txt -e '.[test]'
	$(BIN)/pip install -q --no-deps --upgrade --target $(VENV)/reference $(OPENUNMIX) $(DEMUCS)
	touch $@

venv: $(STAMP)

# museval imports stempeg, which refuses to import without the ffmpeg program; the run report's test opens
# it in headless Chromium; the demo-data renderer
# (and its tests) plays General MIDI soundfonts with fluidsynth and sings with espeak-ng
DEBIAN_DEPS := ffmpeg fluidsynth fluid-soundfont-gm musescore-general-soundfont-lossless fluidr3mono-gm-soundfont \
	opl3-soundfont timgm6mb-soundfont espeak-ng chromium
system-deps:
	@dpkg -s $(DEBIAN_DEPS) >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEBIAN_DEPS) >/dev/null; }

test: venv system-deps
	$(BIN)/python -m pytest tests

bench: venv
	$(BIN)/python bench/separator_speed.py
	$(BIN)/python bench/em_speed.py
	$(BIN)/python bench/bsseval_speed.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/data_throughput.py
	$(BIN)/python bench/training_step.py
	$(BIN)/python bench/epoch_overhead.py
	$(BIN)/python bench/segmenting.py
	$(BIN)/python bench/long_file.py
	$(BIN)/python bench/pipeline_throughput.py --long-minutes 60
	$(BIN)/python bench/cli_latency.py
	$(BIN)/python bench/precision.py
	$(BIN)/python bench/runtime_speed.py
	$(BIN)/python bench/analytics_cost.py
	$(BIN)/python bench/catalog_scale.py

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
# Renders songs in seven styles through four GM soundfonts with a sung voice and per-stem effects
# (440 train + 24 valid + 48 test songs of 12 s, 44.1 kHz, seed 2026; 36 of the test songs numbered
# last so that growing the split kept every other song) and 48 out-of-distribution test songs
# (held-out styles and soundfont), trains demo-5stems then demo-2stems, evaluates both splits
# against the mixture and ideal-ratio-mask baselines, and copies the exports, scores, plots and the
# table in docs/research.md into place. It takes a few hours on 2 CPU cores (docs/models.md, "Training").
DEMO := build/demo
DEMO_SEED := 2026
DEMO_JOBS := 2

$(DEMO)/data/5stems/.done: | venv system-deps
	$(BIN)/python -m training.synthesize --renderer fluidsynth --out $(DEMO)/data/5stems --tracks 464 \
		--valid-fraction 0.052 --test-tracks 12 --ood-tracks 48 --more-test-tracks 36 --duration 12 --rate 44100 --seed $(DEMO_SEED) \
		--jobs $(DEMO_JOBS) --targets vocals bass drums guitar other
	touch $@

$(DEMO)/data/2stems/.done: $(DEMO)/data/5stems/.done
	$(BIN)/python -m training.synthesize --from $(DEMO)/data/5stems --out $(DEMO)/data/2stems \
		--targets vocals accompaniment
	touch $@

demo-data: $(DEMO)/data/5stems/.done $(DEMO)/data/2stems/.done

# trains and evaluates into build/ only: the tree stays clean until both models are done, so the
# second model records the same clean code version as the first
demo-model-%: $(DEMO)/data/%/.done system-deps
	$(BIN)/python -m training.train --profile demo-$* --root $(DEMO)/data/$* --output $(DEMO)/runs/demo-$*
	for split in test test-ood; do $(BIN)/python -m training.evaluate --model $(DEMO)/runs/demo-$*/separator \
		--root $(DEMO)/data/$* --split $$split --baselines --jobs $(DEMO_JOBS) --out $(DEMO)/runs/demo-$*/eval-$$split && \
		$(BIN)/python -m training.evaluate --model $(DEMO)/runs/demo-$*/separator --root $(DEMO)/data/$* \
		--split $$split --audible-db 50 --jobs $(DEMO_JOBS) --out $(DEMO)/runs/demo-$*/eval-$$split-audible || exit 1; done

demo-models: demo-model-5stems demo-model-2stems
	mkdir -p umx_core/models docs/img
	for m in 5stems 2stems; do run=$(DEMO)/runs/demo-$$m; rm -rf umx_core/models/demo-$$m && \
		cp -r $$run/separator umx_core/models/demo-$$m && \
		cp $$run/eval-test/summary.json umx_core/models/demo-$$m/evaluation.json && \
		cp $$run/eval-test-ood/summary.json umx_core/models/demo-$$m/evaluation-ood.json && \
		cp $$run/eval-test-audible/summary.json umx_core/models/demo-$$m/evaluation-audible.json && \
		cp $$run/eval-test-ood-audible/summary.json umx_core/models/demo-$$m/evaluation-ood-audible.json && \
		cp $$run/eval-test/sdr.png docs/img/demo-$$m-sdr.png && \
		cp $$run/eval-test-ood/sdr.png docs/img/demo-$$m-sdr-ood.png || exit 1; done
	$(BIN)/python -m training.demo_table docs/research.md umx_core/models/demo-5stems umx_core/models/demo-2stems
