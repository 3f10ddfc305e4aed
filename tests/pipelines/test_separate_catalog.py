"""The catalog job end to end: `python -m pipelines.separate_catalog` on DirectRunner."""

import glob
import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import random_filters
from umx_core import Separator, storage
from umx_core.pretrained import load_separator

RATE = 16000
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOOD = {"album/a.wav": 3.0, "album/b.flac": 2.5, "c.mp3": 2.0, "short.wav": 0.1, "eight.wav": 1.5,
        "mono8k.mp3": 1.5}
BAD = {"empty.wav": "decode", "text.wav": "decode", "truncated.flac": "decode", "nan.wav": "decode"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    filters = random_filters(("vocals", "drums"), nb_bins=257, max_bin=200)
    path = str(tmp_path_factory.mktemp("model") / "tiny")
    Separator(filters, niter=1, sample_rate=RATE, n_fft=512, n_hop=128).save(path)
    return path


def make_catalog(root):
    """Good tracks of every kind the job must handle, and broken ones."""
    rng = np.random.default_rng(0)
    os.makedirs(os.path.join(root, "album"), exist_ok=True)

    def audio(seconds, channels=2, rate=RATE):
        return (rng.standard_normal((int(seconds * rate), channels)) * 0.1).astype(np.float32)

    sf.write(os.path.join(root, "album/a.wav"), audio(3.0), RATE, subtype="FLOAT")
    sf.write(os.path.join(root, "album/b.flac"), audio(2.5), RATE)
    sf.write(os.path.join(root, "c.mp3"), audio(2.0), RATE, format="MP3")
    sf.write(os.path.join(root, "short.wav"), audio(0.1), RATE, subtype="FLOAT")
    sf.write(os.path.join(root, "eight.wav"), audio(1.5, channels=8), RATE, subtype="FLOAT")
    sf.write(os.path.join(root, "mono8k.mp3"), audio(1.5, channels=1, rate=8000), 8000, format="MP3")
    open(os.path.join(root, "empty.wav"), "wb").close()
    with open(os.path.join(root, "text.wav"), "w") as f:
        f.write("this is not audio\n" * 100)
    sf.write(os.path.join(root, "whole.flac"), audio(3.0), RATE)
    data = open(os.path.join(root, "whole.flac"), "rb").read()
    os.remove(os.path.join(root, "whole.flac"))
    with open(os.path.join(root, "truncated.flac"), "wb") as f:
        f.write(data[: len(data) // 2])
    nan = audio(2.0)
    nan[RATE, 0] = np.nan
    sf.write(os.path.join(root, "nan.wav"), nan, RATE, subtype="FLOAT")


def run_job(*args, check=True):
    # PYTHONFAULTHANDLER: a job that dies of a signal leaves its Python stack in the failure's message
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.run([sys.executable, "-m", "pipelines.separate_catalog", *args], env=env,
                          capture_output=True, text=True, timeout=900)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return proc


def summary(output, run):
    return json.loads(storage.read_bytes(storage.join(output, "_runs", f"{run}.json")))


def failures(output, run):
    text = storage.read_bytes(storage.join(output, "_failed", f"{run}.jsonl")).decode()
    return {os.path.basename(r["path"]): r for r in map(json.loads, text.splitlines())}


def out_dir(output, name):
    return storage.join(output, os.path.splitext(name)[0])


def check_complete(output, model):
    """Every good track: stems of the input's duration at the model's rate, the record last."""
    for name, seconds in GOOD.items():
        record = json.loads(storage.read_bytes(storage.join(out_dir(output, name), "separation.json")))
        assert sorted(record["stems"]) == ["drums", "vocals"] and record["duration_seconds"] == pytest.approx(
            seconds, abs=0.06)
        for path in record["stems"].values():
            data = storage.read_bytes(path)
            info = sf.info(__import__("io").BytesIO(data))
            assert info.samplerate == RATE and abs(info.frames - seconds * RATE) < 0.06 * RATE, (name, info)


def test_gcs_catalog_bad_inputs_rerun_and_repair(model, tmp_path, gcs_emulator):
    local = str(tmp_path / "catalog")
    make_catalog(local)
    source, output = f"gs://{gcs_emulator}/catalog", f"gs://{gcs_emulator}/stems"
    storage.upload_dir(local, source)
    common = ["--input", f"{source}/**", "--output", output, "--model", model, "--codec", "flac"]
    run_job(*common, "--run_id", "first")
    check_complete(output, model)
    first = summary(output, "first")
    assert (first["found"], first["separated"], first["failed"], first["skipped"]) == (10, 6, 4, 0)
    assert first["downmixed"] == 1 and first["audio_hours"] == pytest.approx(sum(GOOD.values()) / 3600, rel=0.01)
    failed = failures(output, "first")
    assert sorted(failed) == sorted(BAD)
    assert "not a readable audio file" in failed["text.wav"]["error"]
    assert "NaN" in failed["nan.wav"]["error"] and "truncated" in failed["truncated.flac"]["error"].lower()
    for name in BAD:
        assert not storage.exists(storage.join(out_dir(output, name), "separation.json"))
    # the output equals the Separator's on the same file (flac output: 24-bit)
    separator = load_separator(model, niter=1, batch_frames=1200)
    audio = sf.read(os.path.join(local, "album/a.wav"), dtype="float32")[0].T
    expected = separator(audio[None])[0]
    got = sf.read(__import__("io").BytesIO(storage.read_bytes(f"{output}/album/a/vocals.flac")), dtype="float32")[0].T
    np.testing.assert_allclose(got, expected[0], atol=2e-6 + 2**-23)
    # second run: nothing new
    run_job(*common, "--run_id", "second")
    second = summary(output, "second")
    assert (second["skipped"], second["separated"], second["failed"]) == (6, 0, 4)
    # a lost record: exactly that track again
    storage.delete(f"{output}/album/b/separation.json")
    run_job(*common, "--run_id", "third")
    third = summary(output, "third")
    assert (third["skipped"], third["separated"]) == (5, 1)
    # other parameters are another job: not complete for it
    run_job(*common, "--niter", "0", "--run_id", "fourth", "--input", "gs://nowhere-bucket-x/none.wav",
            "--input_list", f"{source}/lists/later.txt")
    fourth = summary(output, "fourth")
    assert fourth["separated"] == 6 and fourth["skipped"] == 0
    assert json.loads(storage.read_bytes(f"{output}/c/separation.json"))["parameters"]["niter"] == 0
    # reprocessing a failure list: a repaired track back into the folder the glob run chose, the
    # still-broken ones failed again, the list that was missing read now
    assert failures(output, "fourth")["later.txt"]["stage"] == "match"
    storage.write_bytes(f"{source}/lists/later.txt", f"{source}/c.mp3\n".encode())
    good = io.BytesIO()
    sf.write(good, np.full((RATE, 2), 0.1, np.float32), RATE, format="WAV", subtype="FLOAT")
    storage.write_bytes(f"{source}/text.wav", good.getvalue())
    retry = storage.read_bytes(f"{output}/_failed/first.jsonl") + storage.read_bytes(f"{output}/_failed/fourth.jsonl")
    storage.write_bytes(f"{output}/_retry.jsonl", retry)
    run_job("--input_list", f"{output}/_retry.jsonl", "--output", output, "--model", model, "--run_id", "retry")
    again = summary(output, "retry")
    # (both lists name the broken tracks: each is tried once)
    assert (again["separated"], again["failed"]) == (2, len(BAD))
    assert storage.exists(storage.join(out_dir(output, "text.wav"), "separation.json"))
    assert storage.exists(f"{output}/{gcs_emulator}/catalog/c/separation.json")  # a listed path's folder
    assert sorted(failures(output, "retry")) == sorted({*BAD, "none.wav"} - {"text.wav"})


def test_the_openvino_runtime_gives_the_same_outcomes_and_records(model, tmp_path):
    """The catalog's good and broken tracks on both network runtimes: the same counts, the same
    failures at the same stages, records naming the same fingerprint, stems equal to 1e-4 relative."""
    pytest.importorskip("openvino")
    local = str(tmp_path / "catalog")
    make_catalog(local)
    outputs = {}
    for runtime in ("xla", "openvino"):
        outputs[runtime] = str(tmp_path / runtime)
        run_job("--input", f"{local}/**", "--output", outputs[runtime], "--model", model, "--codec", "wav",
                "--runtime", runtime, "--run_id", "r")
    counts = [{k: summary(out, "r")[k] for k in ("found", "separated", "skipped", "failed")}
              for out in outputs.values()]
    assert counts[0] == counts[1] and counts[0]["failed"] == len(BAD)
    assert ({n: (r["stage"], r["error"]) for n, r in failures(outputs["xla"], "r").items()} ==
            {n: (r["stage"], r["error"].replace(outputs["openvino"], outputs["xla"]))
             for n, r in failures(outputs["openvino"], "r").items()})
    for name in GOOD:
        records = [json.load(open(os.path.join(out_dir(out, name), "separation.json"))) for out in outputs.values()]
        assert records[0]["fingerprint"] == records[1]["fingerprint"]
        assert records[0]["parameters"] == records[1]["parameters"]
        for stem in records[0]["stems"]:
            a, b = (sf.read(os.path.join(out_dir(out, name), f"{stem}.wav"), dtype="float32")[0]
                    for out in outputs.values())
            assert np.linalg.norm(b - a) / np.linalg.norm(a) < 1e-4, f"{name}/{stem}"  # float32 rounding, -80 dB


def test_a_killed_local_run_then_a_rerun_leaves_every_track_complete_and_right(model, tmp_path, monkeypatch):
    """SIGKILL once the first track is complete: every record left beside its own whole stems; the
    rerun (DirectRunner in multi_processing mode) skips those and completes the rest, each stem the
    in-memory Separator's output for its track (to FLAC's 24-bit resolution). The worker processes
    compile their own programs: nothing goes to, or comes from, `umx`'s XLA cache."""
    from tests.pipelines.conftest import check_records

    monkeypatch.setenv("UMX_XLA_CACHE", str(tmp_path / "xla"))
    local = str(tmp_path / "catalog")
    os.makedirs(local)
    rng = np.random.default_rng(1)
    inputs = {}
    for k in range(8):
        inputs[f"t{k}"] = (rng.standard_normal((int(2.5 * RATE), 2)) * 0.1).astype(np.float32)
        sf.write(os.path.join(local, f"t{k}.wav"), inputs[f"t{k}"], RATE, subtype="FLOAT")
    output = str(tmp_path / "stems")
    common = ["--input", os.path.join(local, "*.wav"), "--output", output, "--model", model, "--batch_seconds", "3"]
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.separate_catalog", *common, "--run_id", "killed"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if os.path.isdir(output) and any(os.path.exists(os.path.join(output, d, "separation.json"))
                                         for d in os.listdir(output)):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the job ended before it could be killed"
    # nothing looks complete without all its stems, each the one its record's digest names
    done_before = sorted(check_records(output))
    assert done_before and len(done_before) < 8
    run_job(*common, "--run_id", "again", "--direct_running_mode", "multi_processing", "--direct_num_workers", "2")
    again = summary(output, "again")
    assert (again["separated"], again["skipped"], again["failed"]) == (8 - len(done_before), len(done_before), 0)
    records = check_records(output)
    assert sorted(records) == sorted(inputs)
    assert not glob.glob(str(tmp_path / "xla" / "**" / "*.pb"), recursive=True)
    separator = load_separator(model)
    for name, audio in inputs.items():
        assert records[name]["duration_seconds"] == pytest.approx(2.5)
        assert not [f for f in os.listdir(os.path.join(output, name)) if f.endswith(".part")]
        expected = separator(audio.T[None])[0]
        for k, stem in enumerate(separator.sources):
            written = sf.read(os.path.join(output, name, f"{stem}.flac"), dtype="float32", always_2d=True)[0].T
            np.testing.assert_allclose(written, np.clip(expected[k], -1, 1), atol=1e-5, err_msg=f"{name}/{stem}")


def test_bad_options_are_named(tmp_path):
    proc = run_job("--output", str(tmp_path), check=False)
    assert proc.returncode == 2 and "give --input PATTERN or --input_list FILE" in proc.stderr
    proc = run_job("--input", "x.wav", "--output", str(tmp_path), "--aggregate", "{bad", check=False)
    assert proc.returncode == 2 and "--aggregate is not valid JSON" in proc.stderr
    proc = run_job("--input", "x.wav", "--output", str(tmp_path), "--runner", "DirectRunner", "--targets", "bass",
                   "vocals", check=False)
    assert proc.returncode == 2 and "unexpected argument(s) vocals: a list takes one comma-separated" in proc.stderr


def test_dataflow_translation_with_a_gpu_worker(monkeypatch, tmp_path):
    """The same command on DataflowRunner, translated without submitting (--dry_run): the job
    carries the GPU service option, the worker image, the machine type and our options."""
    from apache_beam.runners.dataflow.internal import apiclient

    from pipelines.catalog import run

    monkeypatch.chdir(tmp_path)  # Beam's stager would take a ./build folder for the `build` package
    image = "us-docker.pkg.dev/my-project/umx/worker:0.1.0"
    accelerator = "worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"
    result, _ = run(["--input", "gs://bucket/catalog/**/*.mp3", "--output", "gs://bucket/stems", "--model", "umxhq",
                     "--runner", "DataflowRunner", "--project", "my-project", "--region", "us-central1",
                     "--temp_location", "gs://bucket/tmp", "--dry_run", "True", "--sdk_container_image", image,
                     "--dataflow_service_options", accelerator, "--machine_type", "g2-standard-8",
                     "--experiments", "no_use_multiple_sdk_containers"])
    job = result.job
    env = apiclient.Environment(packages=[], options=job.options, environment_version="dry-run",
                                proto_pipeline_staged_url="gs://bucket/tmp/pipeline.pb",
                                proto_pipeline=job.proto_pipeline).proto
    assert list(env.service_options) == [accelerator]
    assert "no_use_multiple_sdk_containers" in env.experiments
    (pool,) = env.worker_pools
    assert pool.machine_type == "g2-standard-8"
    assert [c.container_image for c in pool.sdk_harness_container_images] == [image]
    options = dict(env.sdk_pipeline_options["options"])
    # the worker image holds the project and the SDK: nothing staged
    assert "setup_file" not in options and options["sdk_location"] == "container" and options["model"] == "umxhq"
    assert options["input"] == ["gs://bucket/catalog/**/*.mp3"] and options["output"] == "gs://bucket/stems"
    names = {t.unique_name for t in job.proto_pipeline.components.transforms.values()}
    assert {"Expand", "ByFolder", "Claim", "Plan", "Separate", "Summarize", "WriteSummary"} <= names


def test_dataflow_without_a_worker_image_stages_setup_py(monkeypatch, tmp_path):
    from apache_beam.runners.dataflow.internal import apiclient

    from pipelines.catalog import run

    monkeypatch.chdir(tmp_path)
    result, _ = run(["--input", "gs://bucket/a/*.wav", "--output", "gs://bucket/stems", "--runner", "DataflowRunner",
                     "--project", "my-project", "--region", "us-central1", "--temp_location", "gs://bucket/tmp",
                     "--dry_run", "True"])
    env = apiclient.Environment(packages=[], options=result.job.options, environment_version="dry-run",
                                proto_pipeline_staged_url="gs://bucket/tmp/pipeline.pb",
                                proto_pipeline=result.job.proto_pipeline).proto
    options = dict(env.sdk_pipeline_options["options"])
    assert options["setup_file"] == os.path.join(REPO, "setup.py") and options.get("sdk_location") != "container"


def test_input_list_targets_residual_and_aggregate(model, tmp_path):
    rng = np.random.default_rng(2)
    paths = []
    for k in range(2):
        paths.append(str(tmp_path / "src" / f"dir{k}" / "song.wav"))
        os.makedirs(os.path.dirname(paths[-1]))
        sf.write(paths[-1], (rng.standard_normal((2 * RATE, 2)) * 0.1).astype(np.float32), RATE, subtype="FLOAT")
    listing = tmp_path / "list.txt"
    listing.write_text("# new this week\n" + "\n".join(paths + [str(tmp_path / "gone.wav")]) + "\n")
    output = str(tmp_path / "stems")
    aggregate = json.dumps({"lead": ["vocals"], "rest": ["residual"]})
    run_job("--input_list", str(listing), "--output", output, "--model", model, "--targets", "vocals", "--residual",
            "--aggregate", aggregate, "--codec", "wav", "--run_id", "listed")
    result = summary(output, "listed")
    assert (result["found"], result["separated"], result["failed"]) == (3, 2, 1)
    assert "gone.wav: no such file" in failures(output, "listed")["gone.wav"]["error"]
    separator = load_separator(model, targets=["vocals"], residual=True, niter=1, batch_frames=1200)
    for path in paths:
        folder = os.path.join(output, os.path.splitext(os.path.abspath(path).lstrip("/"))[0])
        assert sorted(os.listdir(folder)) == ["lead.wav", "rest.wav", "separation.json"]
        expected = separator(sf.read(path, dtype="float32")[0].T[None])[0]
        np.testing.assert_allclose(sf.read(os.path.join(folder, "rest.wav"), dtype="float32")[0].T, expected[1],
                                   atol=1e-6)
