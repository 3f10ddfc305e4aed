"""Shared fixtures of the pipeline tests: a tiny model, short audio, running the job in-process."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import random_filters
from umx_core import Separator, storage
from pipelines.records import RECORD_NAME

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


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_in_process(argv):
    """The catalog job in this process (DirectRunner through Beam's TestPipeline); returns its summary."""
    from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline

    from pipelines.catalog import run

    _, options = run(argv, test_pipeline=BeamTestPipeline())
    return run_summary(options.output, options.run_id)


def stems_and_records(output):
    """`({stem path relative to output: path}, {folder relative to output: record})`, the job's own
    `_runs` and `_failed` aside."""
    stems, records = {}, {}
    for path in storage.list_files(output):
        rel = path[len(output) :].lstrip("/")
        if rel.startswith(("_runs/", "_failed/", "_manifest/")):
            continue
        if rel.endswith("/" + RECORD_NAME):
            records[rel.rsplit("/", 1)[0]] = json.loads(storage.read_bytes(path))
        else:
            stems[rel] = path
    return stems, records


def check_records(output):
    """Every record under `output` stands beside the very stems it names: each exists and has the
    checksum the record gives (an independent digest of the stored bytes). Returns the records."""
    _, records = stems_and_records(output)
    for folder, record in records.items():
        assert sorted(record["stems"]) == sorted(record["stem_checksums"]), folder
        for name, path in record["stems"].items():
            assert storage.exists(path), f"{folder}: its record names {path}, which is missing"
            assert _digest(path, record["stem_checksums"][name]) == record["stem_checksums"][name], \
                f"{folder}: {path} is not the stem its record names"
    return records


def _digest(path, like):
    """`algorithm:hex` of the stored bytes at `path`, computed here (not by the code under test)."""
    import hashlib

    algorithm = like.split(":", 1)[0]
    return f"{algorithm}:{hashlib.new(algorithm, storage.read_bytes(path)).hexdigest()}"
