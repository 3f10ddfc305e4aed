"""A replaced input is separated again; an untouched (or only touched) one is skipped (issue 15)."""

import hashlib
import io
import json
import os

import numpy as np
import pytest
import soundfile as sf
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline

from pipelines.catalog import run
from tests.pipelines.conftest import RATE, run_summary, write_audio
from umx_core import storage
from umx_core.pretrained import load_separator


def _job(source, output, model, run_id):
    run(["--input", storage.join(source, "*.wav"), "--output", output, "--model", model, "--codec", "wav",
         "--run_id", run_id], test_pipeline=BeamTestPipeline())
    summary = run_summary(output, run_id)
    return summary["separated"], summary["skipped"], summary["failed"]


def _wav(seconds, seed):
    buffer = io.BytesIO()
    data = (np.random.default_rng(seed).standard_normal((int(seconds * RATE), 2)) * 0.1).astype(np.float32)
    sf.write(buffer, data, RATE, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


@pytest.mark.parametrize("where", ["local", "gcs"])
def test_replaced_input_is_separated_again_untouched_ones_skipped(where, tmp_path, tiny_model, request):
    if where == "gcs":
        bucket = request.getfixturevalue("gcs_emulator")
        root = f"gs://{bucket}/identity"
    else:
        root = str(tmp_path)
    source, output = storage.join(root, "in"), storage.join(root, "out")
    for name, seed in (("a", 1), ("b", 2)):
        storage.write_bytes(storage.join(source, f"{name}.wav"), _wav(0.8, seed))
    assert _job(source, output, tiny_model, "first") == (2, 0, 0)
    first_vocals = storage.read_bytes(storage.join(output, "a", "vocals.wav"))

    new_audio = _wav(0.8, seed=3)  # other audio, the same length: the same size
    assert len(new_audio) == len(storage.read_bytes(storage.join(source, "a.wav")))
    a_path, b_path = storage.join(source, "a.wav"), storage.join(source, "b.wav")
    storage.write_bytes(a_path, new_audio)
    if where == "local":  # a distinct mtime whatever the file system's clock resolution
        os.utime(a_path, ns=(os.stat(a_path).st_atime_ns, os.stat(a_path).st_mtime_ns + 10**9))
        os.utime(b_path, ns=(os.stat(b_path).st_atime_ns, os.stat(b_path).st_mtime_ns + 10**9))  # touched only
    else:
        storage.write_bytes(b_path, storage.read_bytes(b_path))  # the same bytes again: a new generation
    assert _job(source, output, tiny_model, "second") == (1, 1, 0)

    # a's stems are now the new audio's (the Separator's output on it), and its record says which input
    separator = load_separator(tiny_model, niter=1)
    expected = separator(sf.read(io.BytesIO(new_audio), dtype="float32")[0].T[None])[0]
    vocals = storage.read_bytes(storage.join(output, "a", "vocals.wav"))
    assert vocals != first_vocals
    np.testing.assert_allclose(sf.read(io.BytesIO(vocals), dtype="float32")[0].T, expected[0], atol=1e-5)
    record = json.loads(storage.read_bytes(storage.join(output, "a", "separation.json")))
    if where == "local":  # the expected values from os.stat and hashlib, not from the storage module
        stat = os.stat(a_path)
        assert record["input_identity"] == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        assert record["input_checksum"] == "sha256:" + hashlib.sha256(new_audio).hexdigest()
    else:
        from google.cloud import storage as google_storage

        client = google_storage.Client.create_anonymous_client()
        blob = client.bucket(bucket).get_blob("identity/in/a.wav")
        assert record["input_identity"] == {"generation": int(blob.generation), "size": len(new_audio)}
        assert record["input_checksum"] == "md5:" + hashlib.md5(new_audio).hexdigest()

    assert _job(source, output, tiny_model, "third") == (0, 2, 0)  # nothing changed since
