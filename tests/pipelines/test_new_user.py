"""What a new user of the catalog job runs into (issue 12's traps), end to end on DirectRunner."""

import json
import os
import re
import subprocess
import sys

from tests.pipelines.conftest import failure_records, run_summary, tiny_separator, write_audio
from pipelines.records import model_digest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# TensorFlow's native log lines ("I0000 00:00:... port.cc:153] oneDNN ...") and absl's preamble
NATIVE_LOG = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog|oneDNN|cuInit|cuda", re.M)


def job(*args):
    """The job as a user runs it, in a fresh process with the user's environment."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = REPO
    return subprocess.run([sys.executable, "-m", "pipelines.separate_catalog", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_help_lists_the_jobs_options_with_defaults():
    proc = job("--help")
    assert proc.returncode == 0, proc.stderr
    for option in ("--input ", "--input_list", "--output", "--model", "--niter", "--codec", "--batch_frames",
                   "--wiener_win_len", "--aggregate", "--overwrite"):
        assert option in proc.stdout, option
    text = " ".join(proc.stdout.split())
    assert "(default: demo-5stems)" in text and "(default: flac)" in text and "(default: 300)" in text
    assert "Every other flag goes to Beam" in text


def test_same_name_inputs_typos_and_output_inside_the_input(tmp_path, tiny_model):
    """song.wav and song.flac side by side, a pattern with a typo, and --output inside the input tree
    (run twice): one keeps the folder and the other fails naming both; the typo is said on stderr, in
    the summary and as a failure; the second run finds the same inputs and skips them; TensorFlow's
    native log lines stay off stderr."""
    root = str(tmp_path / "catalog")
    write_audio(os.path.join(root, "song.wav"), seed=1, subtype="FLOAT")
    write_audio(os.path.join(root, "song.flac"), seed=2)
    write_audio(os.path.join(root, "other.wav"), seed=3)
    output = os.path.join(root, "stems")
    args = ["--input", os.path.join(root, "**"), "--input", os.path.join(root, "typo*.wav"), "--output", output,
            "--model", tiny_model, "--codec", "wav"]
    first = job(*args, "--run_id", "first")
    assert first.returncode == 0, first.stderr
    assert not NATIVE_LOG.search(first.stderr), first.stderr
    assert f"{os.path.join(root, 'typo*.wav')} matched no input file" in first.stderr
    summary = run_summary(output, "first")
    assert (summary["found"], summary["separated"], summary["failed"], summary["unmatched"]) == (3, 2, 2, 1)
    assert summary["unmatched_inputs"] == [os.path.join(root, "typo*.wav")]
    records = {os.path.basename(r["path"]): r for r in failure_records(output, "first")}
    assert records["typo*.wav"]["stage"] == "match"
    assert records["song.wav"]["stage"] == "output" and "song.flac" in records["song.wav"]["error"]
    record = json.load(open(os.path.join(output, "song", "separation.json")))
    assert record["input"] == os.path.join(root, "song.flac")

    second = job(*args, "--run_id", "second")
    assert second.returncode == 0, second.stderr
    summary = run_summary(output, "second")  # the first run's stems are not inputs
    assert (summary["found"], summary["separated"], summary["skipped"]) == (3, 0, 2)


def test_new_weights_under_the_same_path_are_separated_again(tmp_path):
    model = str(tmp_path / "model")
    tiny_separator().save(model)
    song = write_audio(str(tmp_path / "in" / "a.wav"))
    output = str(tmp_path / "out")
    args = ["--input", song, "--output", output, "--model", model]
    assert job(*args, "--run_id", "1").returncode == 0
    assert job(*args, "--run_id", "2").returncode == 0 and run_summary(output, "2")["skipped"] == 1
    before = model_digest(model)
    tiny_separator(seed=7).save(model)  # retrained: same path, same settings, other weights
    assert model_digest(model) != before
    assert job(*args, "--run_id", "3").returncode == 0
    assert run_summary(output, "3")["separated"] == 1
    assert json.load(open(os.path.join(output, "a", "separation.json")))["model_digest"] == model_digest(model)
