"""The catalog job on a GCS that misbehaves (issue 15): the emulator behind tests/faults.py's proxy,
10% of requests failing. Its output must equal a fault-free run's."""

import io
import json
import os

import numpy as np
import soundfile as sf
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline

from pipelines.catalog import run
from tests.faults import FaultProxy
from tests.pipelines.conftest import RATE, failure_records, run_summary
from umx_core import storage
from umx_core.storage import gcs_client

GOOD, BROKEN, STUCK = 30, ("empty.wav", "text.wav", "truncated.flac", "nan.wav"), "t07.wav"
UNWRITABLE = "t11.wav"  # its output's record can be neither read nor removed
FAULTS = {"429": 0.02, "500": 0.01, "503": 0.02, "reset_before": 0.015, "reset_after": 0.01, "truncate": 0.015,
          "delay": 0.01}  # 10% of requests


def _wav(samples, **kind):
    buffer = io.BytesIO()
    sf.write(buffer, samples, RATE, **(kind or {"format": "WAV", "subtype": "FLOAT"}))
    return buffer.getvalue()


def _catalog(source):
    rng = np.random.default_rng(15)
    for k in range(GOOD):
        samples = (rng.standard_normal((int(RATE * (0.3 + 0.02 * k)), 2)) * 0.1).astype(np.float32)
        storage.write_bytes(f"{source}/good/t{k:02d}.wav", _wav(samples))
    nan = (rng.standard_normal((RATE // 2, 2)) * 0.1).astype(np.float32)
    nan[100, 0] = np.nan
    whole = _wav((rng.standard_normal((RATE, 2)) * 0.1).astype(np.float32), format="FLAC")
    for name, data in zip(BROKEN, (b"", b"not audio\n" * 50, whole[: len(whole) // 2], _wav(nan))):
        storage.write_bytes(f"{source}/bad/{name}", data)


def _job(source, output, model, run_id):
    run(["--input", f"{source}/**", "--output", output, "--model", model, "--codec", "wav", "--run_id", run_id,
         "--batch_seconds", "4"], test_pipeline=BeamTestPipeline())


def _stems(output):
    """`{relative path: bytes}` of every stem and `{folder: record}` under `output` (read fault-free)."""
    stems, records = {}, {}
    for path in storage.list_files(output):
        rel = path[len(output) + 1 :]
        if rel.endswith("/separation.json"):
            records[rel.rsplit("/", 1)[0]] = json.loads(storage.read_bytes(path))
        elif not rel.startswith(("_runs/", "_failed/", "_manifest/")):
            stems[rel] = storage.read_bytes(path)
    return stems, records


def test_catalog_over_faulty_gcs_equals_a_fault_free_run(gcs_emulator, tiny_model, monkeypatch):
    from google.cloud.storage.retry import DEFAULT_RETRY

    root = f"gs://{gcs_emulator}/faulty-catalog"
    source = f"{root}/in"
    _catalog(source)
    _job(source, f"{root}/reference", tiny_model, "reference")
    reference, reference_records = _stems(f"{root}/reference")
    assert len(reference_records) == GOOD and len(reference) == 2 * GOOD

    monkeypatch.setattr(gcs_client, "RETRY", DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.3).with_timeout(10))
    monkeypatch.setattr(gcs_client, "TIMEOUT", (5.0, 5.0))
    upstream = os.environ["STORAGE_EMULATOR_HOST"]
    # and one track whose every request fails, however often it is retried, and one whose record does
    always = {STUCK: "503", "out(/|%2F)good(/|%2F)t11(/|%2F)separation": "503"}
    with FaultProxy(upstream, FAULTS, seed=15, delay=0.1, lifetime=600, always=always) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        _job(source, f"{root}/out", tiny_model, "faulty")
        injected, requests, stuck_requests = proxy.injected(), proxy.counts["requests"], proxy.counts["always"]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", upstream)
    print(f"\ninjected {injected} in {requests} requests ({stuck_requests} of the 503s: the stuck paths')")
    assert set(injected) == set(FAULTS) and stuck_requests >= 2  # the stuck track was retried
    assert sum(injected.values()) - stuck_requests >= 0.07 * (requests - stuck_requests)

    summary = run_summary(f"{root}/out", "faulty")
    assert (summary["found"], summary["separated"], summary["failed"], summary["skipped"]) == (
        GOOD + len(BROKEN), GOOD - 2, len(BROKEN) + 2, 0)
    failed = {os.path.basename(r["path"]): r for r in failure_records(f"{root}/out", "faulty")}
    assert sorted(failed) == sorted((*BROKEN, STUCK, UNWRITABLE))
    assert {name: r["stage"] for name, r in failed.items()} == {**{n: "decode" for n in (*BROKEN, STUCK)},
                                                                UNWRITABLE: "write"}
    assert "GCS metadata read failed (ServiceUnavailable" in failed[STUCK]["error"]
    assert "separation.json: GCS delete failed (ServiceUnavailable" in failed[UNWRITABLE]["error"]
    stems, records = _stems(f"{root}/out")
    stuck = {"good/" + name[: -len(".wav")] for name in (STUCK, UNWRITABLE)}
    # every other stem whole and equal to the fault-free run's; no .part objects
    _same_stems(stems, {rel: data for rel, data in reference.items() if rel.rsplit("/", 1)[0] not in stuck})
    assert sorted(records) == sorted(set(reference_records) - stuck)
    for folder, record in records.items():  # a record only beside every stem it names
        assert all(storage.exists(path) for path in record["stems"].values()), folder

    # the same run again over the faults: what was done is skipped, the stuck tracks are repaired
    with FaultProxy(upstream, FAULTS, seed=16, delay=0.1, lifetime=600) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        _job(source, f"{root}/out", tiny_model, "again")
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", upstream)
    again = run_summary(f"{root}/out", "again")
    assert (again["skipped"], again["separated"], again["failed"]) == (GOOD - 2, 2, len(BROKEN))
    _same_stems(_stems(f"{root}/out")[0], reference)


def _same_stems(stems, reference):
    """The same stem files, each as long as the reference and equal to float rounding (tracks
    batched together differently run through the network in batches of other sizes)."""
    assert sorted(stems) == sorted(reference)
    for rel, data in stems.items():
        ours, theirs = (sf.read(io.BytesIO(d), dtype="float32")[0] for d in (data, reference[rel]))
        assert ours.shape == theirs.shape, rel
        np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=rel)


def test_umx_over_faulty_gcs_names_the_file_that_still_fails(gcs_emulator, tiny_model, monkeypatch, capsys):
    """`umx` with gs:// input and output: retried through the faults; a file whose requests keep
    failing is named on stderr, the others complete as without faults, exit code 2."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    from umx_core.cli import main

    root = f"gs://{gcs_emulator}/umx-faults"
    rng = np.random.default_rng(5)
    inputs = []
    for name in ("one", "two", "stuck"):
        inputs.append(f"{root}/in/{name}.wav")
        storage.write_bytes(inputs[-1], _wav((rng.standard_normal((RATE // 2, 2)) * 0.1).astype(np.float32)))
    assert main([*inputs[:2], "--model", tiny_model, "--outdir", f"{root}/reference", "--no-cuda"]) == 0
    reference = _stems(f"{root}/reference")[0]

    monkeypatch.setattr(gcs_client, "RETRY", DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.3).with_timeout(5))
    monkeypatch.setattr(gcs_client, "TIMEOUT", (5.0, 5.0))
    upstream = os.environ["STORAGE_EMULATOR_HOST"]
    capsys.readouterr()
    rates = {kind: 2 * rate for kind, rate in FAULTS.items()}  # 20%: this command makes few requests
    with FaultProxy(upstream, rates, seed=5, delay=0.1, lifetime=300, always={"stuck.wav": "503"}) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        code = main([*inputs, "--model", tiny_model, "--outdir", f"{root}/out", "--no-cuda"])
        injected, drawn = proxy.injected(), sum(proxy.injected().values()) - proxy.counts["always"]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", upstream)
    err = capsys.readouterr().err
    print(f"\numx: injected {injected}, {drawn} of them on the other files")
    assert code == 2 and drawn >= 2
    errors = [line for line in err.splitlines() if line.startswith("umx: error:")]
    assert len(errors) == 1 and f"{root}/in/stuck.wav" in errors[0] and "ServiceUnavailable" in errors[0], err
    _same_stems(_stems(f"{root}/out")[0], reference)
