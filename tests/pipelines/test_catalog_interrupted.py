"""The catalog job killed at each step of writing a track, and two runs at once on one output
(issue 15): a rerun always ends complete and equal to an uninterrupted run, and at no moment
does a record stand beside stems other than the ones it names.

The stops come from `tests/pipelines/fault_points.py`, a wrapper that patches the write steps of
the child process (no test hooks in product code)."""

import os
import select
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.pipelines.conftest import (REPO, check_records, failure_records, run_in_process, run_summary,
                                     stems_and_records, write_audio)
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


def _child(step, action, args, request):
    """`pipelines.separate_catalog ARGS` in a child process stopped at `step` (`fault_points`),
    killed when the test ends if it still runs (a failed test never leaves it paused)."""
    env = {**os.environ, "PYTHONPATH": REPO, "UMX_FAULT_AT": step, "UMX_FAULT_DO": action,
           "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "tests.pipelines.fault_points", "pipelines.separate_catalog", *args]
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    request.addfinalizer(lambda: child.poll() is None and (child.kill(), child.wait()))
    return child


def _place(where, source, request, tmp_path):
    """`(input root, output root)`: the local catalog as it is, or copied to the emulator."""
    if where == "local":
        return source, str(tmp_path / "out")
    bucket = request.getfixturevalue("gcs_emulator")
    root = f"gs://{bucket}/interrupted-{request.node.callspec.id}"
    storage.upload_dir(source, f"{root}/in")
    return f"{root}/in", f"{root}/out"


def _same_as_reference(output, reference, atol=1e-6):
    stems, records = stems_and_records(output)
    assert sorted(records) == sorted(TRACKS)
    assert sorted(stems) == sorted(reference)
    for rel, path in stems.items():
        data = sf.read(storage.open_read(path) if storage.is_gcs(path) else path, dtype="float32")[0]
        np.testing.assert_allclose(data, reference[rel], atol=atol, err_msg=rel)
    leftovers = [p for p in storage.list_files(output) if p.endswith(".part") or ".tmp-" in p]
    assert not leftovers, leftovers


@pytest.mark.parametrize("where, step", [("local", "write:2"), ("local", "place:2"), ("local", "record:2"),
                                         ("local", "record-rename:2"),
                                         ("gcs", "write:2"), ("gcs", "place:2"), ("gcs", "upload:2"),
                                         ("gcs", "record:2")])
def test_a_kill_at_each_write_step_then_a_rerun(where, step, reference, tiny_model, request, tmp_path):
    """Killed while a stem is half-written (`write`), between two stems (`place`), halfway through
    a stem's upload (`upload`), after every stem and before the record (`record`), with the
    record's bytes under their temporary name (`record-rename`, local: gs:// has no rename). The output
    first holds a complete run with other settings, so the killed run replaces stems under
    records that must not survive beside them."""
    source, reference = reference
    source, output = _place(where, source, request, tmp_path)
    run_in_process(_args(source, output, tiny_model, "stale", "--niter", "0"))
    check_records(output)
    proc = _child(step, "kill", _args(source, output, tiny_model, "killed"), request)
    err = proc.communicate(timeout=600)[1]
    assert proc.returncode == -signal.SIGKILL, f"not killed at {step}: {err[-3000:]}"
    check_records(output)  # what the kill left: no record beside stems it does not name

    summary = run_in_process(_args(source, output, tiny_model, "rerun"))
    assert summary["separated"] + summary["skipped"] == len(TRACKS) and summary["failed"] == 0
    assert summary["separated"] >= 1  # the killed track, at least
    check_records(output)
    _same_as_reference(output, reference)


@pytest.mark.parametrize("where", ["local", "gcs"])
def test_two_runs_at_once_on_one_output(where, reference, tiny_model, request, tmp_path):
    """Run A stops between the two stems of its first track; run B (same settings, hence the same
    records' fingerprint, but another batch_frames, hence other float rounding in some stems) does
    the whole catalog meanwhile; then A goes on and places its second stem beside B's first. The
    folder A mixed loses its record (A reports the track failed, naming the overlap), every other
    record stands beside exactly the stems it names, and a third run completes the catalog."""
    source, reference = reference
    source, output = _place(where, source, request, tmp_path)
    sync = tmp_path / "sync"
    sync.mkdir()
    os.mkfifo(sync / "arrived")
    os.mkfifo(sync / "go")
    arrived = os.open(sync / "arrived", os.O_RDONLY | os.O_NONBLOCK)
    first = _child("place:2", f"pause:{sync}", _args(source, output, tiny_model, "A"), request)
    while not select.select([arrived], [], [], 1.0)[0]:  # A's arrival, or its end
        assert first.poll() is None, f"run A ended before its pause: {first.stderr.read()[-3000:]}"
    mixed = os.read(arrived, 4096).decode().strip().rsplit("/", 1)[0]  # the folder A is placing stems in
    os.close(arrived)
    a_first = {rel: stem for rel, stem in _stem_bytes(output).items() if rel.startswith(mixed[len(output) + 1 :] + "/")}
    assert len(a_first) == 1, a_first  # A placed one stem of that folder, then stopped

    b = run_in_process(_args(source, output, tiny_model, "B", "--batch_frames", "40"))
    assert (b["separated"], b["failed"]) == (len(TRACKS), 0)
    check_records(output)
    ((rel, a_stem),) = a_first.items()
    assert _stem_bytes(output)[rel] != a_stem, "B wrote the bytes A did: this overlap proves nothing"

    with open(sync / "go", "w"):
        pass
    err = first.communicate(timeout=600)[1]
    assert first.returncode == 0, err[-3000:]
    records = check_records(output)
    a = run_summary(output, "A")
    (failed,) = failure_records(output, "A")
    assert failed["output"] == mixed and failed["stage"] == "write" and "replaced by another attempt" in failed["error"]
    assert a["separated"] + a["skipped"] == len(TRACKS) - 1 and a["failed"] == 1  # skipped: B's, planned late
    assert sorted(records) == sorted(set(TRACKS) - {mixed.rsplit("/", 1)[-1]})

    again = run_in_process(_args(source, output, tiny_model, "again"))
    assert (again["separated"], again["skipped"], again["failed"]) == (1, len(TRACKS) - 1, 0)
    check_records(output)
    _same_as_reference(output, reference, atol=1e-5)  # B's stems: other batches, other float rounding


def _stem_bytes(output):
    """`{relative path: bytes}` of the stems in place (not the `.part` files being written)."""
    return {rel: storage.read_bytes(path) for rel, path in stems_and_records(output)[0].items()
            if not rel.endswith(".part")}
