"""Shared fixtures of the pipeline tests: a tiny model, short audio, running the job in-process."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import random_filters
from umx_core import Separator, storage

RATE = 16000


def tiny_separator(seed=0):
    filters = random_filters(("vocals", "drums"), nb_bins=257, max_bin=200)
    if seed:  # other weights, same architecture
        for layer in filters.values():
            rng = np.random.default_rng(seed)
            layer.set_weights([w + rng.standard_normal(w.shape).astype(w.dtype) * 0.1 for w in layer.get_weights()])
    return Separator(filters, niter=1, sample_rate=RATE, n_fft=512, n_hop=128)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A saved two-target model at 16 kHz (n_fft 512)."""
    path = str(tmp_path_factory.mktemp("tiny") / "model")
    tiny_separator().save(path)
    return path


def write_audio(path, seconds=1.0, channels=2, seed=0, rate=RATE, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = (np.random.default_rng(seed).standard_normal((int(seconds * rate), channels)) * 0.1).astype(np.float32)
    sf.write(path, data, rate, **kwargs)
    return path


def run_summary(output, run):
    return json.loads(storage.read_bytes(storage.join(output, "_runs", f"{run}.json")))


def failure_records(output, run):
    text = storage.read_bytes(storage.join(output, "_failed", f"{run}.jsonl")).decode()
    return [json.loads(line) for line in text.splitlines()]
