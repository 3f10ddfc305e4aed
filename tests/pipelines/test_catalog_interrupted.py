"""The catalog job killed at each step of writing a track, and two runs at once on one output
(issue 15): a rerun always ends complete and equal to an uninterrupted run, and at no moment
does a record stand beside stems other than the ones it names.

The stops come from `tests/pipelines/fault_points.py`, a wrapper that patches the write steps of
the child process (no test hooks in product code)."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.pipelines.conftest import REPO, check_records, run_in_process, stems_and_records, write_audio
from umx_core import storage

TRACKS = {"t0": 1.0, "t1": 1.5, "t2": 1.2}


def _args(source, output, model, run_id, *extra):
    return ["--input", storage.join(source, "*.wav"), "--output", output, "--model", model, "--codec", "wav",
            "--batch_seconds", "2", "--run_id", run_id, *extra]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model):
    """The local catalog and an uninterrupted run's `{relative stem path: samples}`."""
    root = tmp_path_factory.mktemp("interrupted")
    source = str(root / "in")
    for seed, (name, seconds) in enumerate(TRACKS.items()):
        write_audio(os.path.join(source, f"{name}.wav"), seconds, seed=seed, subtype="FLOAT")
    run_in_process(_args(source, str(root / "reference"), tiny_model, "reference"))
    stems, records = stems_and_records(str(root / "reference"))
    assert sorted(records) == sorted(TRACKS) and len(stems) == 2 * len(TRACKS)
    return source, {rel: sf.read(path, dtype="float32")[0] for rel, path in stems.items()}


def _child(step, action, args):
    """`pipelines.separate_catalog ARGS` in a child process stopped at `step` (`fault_points`)."""
    env = {**os.environ, "PYTHONPATH": REPO, "UMX_FAULT_AT": step, "UMX_FAULT_DO": action,
           "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "tests.pipelines.fault_points", "pipelines.separate_catalog", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _place(where, source, request, tmp_path):
    """`(input root, output root)`: the local catalog as it is, or copied to the emulator."""
    if where == "local":
        return source, str(tmp_path / "out")
    bucket = request.getfixturevalue("gcs_emulator")
    root = f"gs://{bucket}/interrupted-{request.node.callspec.id}"
    storage.upload_dir(source, f"{root}/in")
    return f"{root}/in", f"{root}/out"


def _same_as_reference(output, reference):
    stems, records = stems_and_records(output)
    assert sorted(records) == sorted(TRACKS)
    assert sorted(stems) == sorted(reference)
    for rel, path in stems.items():
        data = sf.read(storage.open_read(path) if storage.is_gcs(path) else path, dtype="float32")[0]
        np.testing.assert_allclose(data, reference[rel], atol=1e-6, err_msg=rel)
    leftovers = [p for p in storage.list_files(output) if p.endswith(".part") or ".tmp-" in p]
    assert not leftovers, leftovers


@pytest.mark.parametrize("where, step", [("local", "write:2"), ("local", "place:2"), ("local", "record:2"),
                                         ("gcs", "write:2"), ("gcs", "place:2"), ("gcs", "upload:2"),
                                         ("gcs", "record:2")])
def test_a_kill_at_each_write_step_then_a_rerun(where, step, reference, tiny_model, request, tmp_path):
    """Killed while a stem is half-written (`write`), between two stems (`place`), halfway through
    a stem's upload (`upload`), after every stem and before the record (`record`). The output
    first holds a complete run with other settings, so the killed run replaces stems under
    records that must not survive beside them."""
    source, reference = reference
    source, output = _place(where, source, request, tmp_path)
    run_in_process(_args(source, output, tiny_model, "stale", "--niter", "0"))
    check_records(output)
    proc = _child(step, "kill", _args(source, output, tiny_model, "killed"))
    err = proc.communicate(timeout=600)[1]
    assert proc.returncode == -signal.SIGKILL, f"not killed at {step}: {err[-3000:]}"
    check_records(output)  # what the kill left: no record beside stems it does not name

    summary = run_in_process(_args(source, output, tiny_model, "rerun"))
    assert summary["separated"] + summary["skipped"] == len(TRACKS) and summary["failed"] == 0
    assert summary["separated"] >= 1  # the killed track, at least
    check_records(output)
    _same_as_reference(output, reference)
