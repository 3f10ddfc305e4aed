"""The analytics in records, the manifest (Parquet, BigQuery, rebuilt), the run report and the job's
own folders (pipelines/manifest.py, report.py, stages.py)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from pipelines import manifest
from pipelines.stages import ExpandInputs, relative_output
from tests.pipelines.conftest import RATE, REPO, failure_records, run_in_process, write_audio
from tests.pipelines.test_stages import run_dofn
from umx_core import storage
from umx_core.errors import UMXError


def catalog(root):
    """Songs, a silent track, a 0.5 s track, one with NaN samples, and one in a folder named `_failed`."""
    write_audio(os.path.join(root, "a.wav"), seconds=2.0, seed=1, subtype="FLOAT")
    write_audio(os.path.join(root, "album", "b.wav"), seconds=1.5, seed=2, subtype="FLOAT")
    write_audio(os.path.join(root, "_failed", "c.wav"), seconds=1.0, seed=3, subtype="FLOAT")
    sf.write(os.path.join(root, "silent.wav"), np.zeros((RATE, 2), np.float32), RATE, subtype="FLOAT")
    write_audio(os.path.join(root, "short.wav"), seconds=0.5, seed=4, subtype="FLOAT")
    nan = np.full((RATE, 2), 0.1, np.float32)
    nan[RATE // 2] = np.nan
    sf.write(os.path.join(root, "nan.wav"), nan, RATE, subtype="FLOAT")


def manifest_table(output, pattern):
    """The manifest files under `output` whose names start with `pattern`, read as one table."""
    import io

    import pyarrow as pa

    files = [f for f in storage.list_files(storage.join(output, manifest.MANIFEST)) if f.endswith(".parquet")
             and f.rsplit("/", 1)[-1].startswith(pattern)]
    return pa.concat_tables([pq.read_table(io.BytesIO(storage.read_bytes(f))) for f in files]) if files else None


@pytest.fixture(scope="module")
def separated(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("analytics")
    catalog(str(root / "in"))
    output = str(root / "out")
    summary = run_in_process(["--input", str(root / "in" / "**"), "--output", output, "--model", tiny_model,
                              "--codec", "wav", "--run_id", "r1"])
    return root, output, summary


def test_records_hold_the_analytics_and_odd_tracks_give_defined_numbers(separated):
    root, output, summary = separated
    assert (summary["separated"], summary["failed"]) == (5, 1)
    assert [(r["stage"], os.path.basename(r["path"])) for r in failure_records(output, "r1")] == [("decode", "nan.wav")]
    for name in ("a", "album/b", "__failed/c", "silent", "short"):
        text = open(os.path.join(output, name, "separation.json")).read()
        assert "Infinity" not in text and "NaN" not in text, name  # strict JSON: silence is null
        record = json.loads(text)
        analytics = record["analytics"]
        assert sorted(analytics["stems"]) == ["drums", "vocals"] and record["analytics_settings"]["audible_db"] == 12.0
        assert isinstance(analytics["instrumental"], bool)
    silent = json.load(open(os.path.join(output, "silent", "separation.json")))["analytics"]
    assert silent["mixture"]["loudness_lufs"] is None and silent["stems"]["vocals"]["true_peak_dbtp"] is None
    assert silent["instrumental"] is True and silent["stems"]["vocals"]["audible_share"] == 0.0
    song = json.load(open(os.path.join(output, "a", "separation.json")))["analytics"]
    assert -40 < song["mixture"]["loudness_lufs"] < 0 and song["stems"]["vocals"]["energy_share"] > 0


def test_the_jobs_own_folders_are_never_a_tracks(separated):
    """`in/_failed/c.wav` is separated into `__failed/c`; `_failed/` keeps only failure lists."""
    root, output, _ = separated
    assert sorted(os.listdir(os.path.join(output, "__failed", "c"))) == ["drums.wav", "separation.json", "vocals.wav"]
    assert sorted(os.listdir(os.path.join(output, "_failed"))) == ["r1.jsonl"]
    assert relative_output("gs://b/in/__x/y.wav", "gs://b/in") == "___x/y"
    assert relative_output("gs://b/in/x_/_y.wav", "gs://b/in") == "x_/_y"  # only the top-level name


@pytest.mark.parametrize("name", ["gs://b/in/../../etc/x.wav", "gs://b/in/a/./x.wav", "gs://b/in/a//x.wav",
                                  "gs://b/in/bad\nname.wav", "gs://b/in/tab\there.wav"])
def test_names_that_would_leave_the_output_or_hold_control_characters_fail_alone(name):
    with pytest.raises(UMXError, match="leaves the output folder or holds control characters") as caught:
        relative_output(name, "gs://b/in")
    assert (caught.value.stage, caught.value.path) == ("output", name)


def test_a_name_with_a_newline_gets_a_failure_record_and_the_others_go_on(tmp_path):
    root = tmp_path / "in"
    write_audio(str(root / "good.wav"))
    write_audio(str(root / "bad\nname.wav"))
    out = run_dofn(ExpandInputs(str(tmp_path / "out")), [("glob", str(root / "*.wav"))], ["failed"])
    assert [folder for folder, _ in out["main"]] == [str(tmp_path / "out" / "good")]
    (failed,) = out["failed"]
    assert failed["stage"] == "output" and failed["path"].endswith("bad\nname.wav")


def test_the_manifest_is_the_records_rows_with_its_schema(separated):
    root, output, _ = separated
    table = manifest_table(output, "r1")
    assert table.num_rows == 5 * 2 and set(table.column_names) == {name for name, *_ in manifest.SCHEMA}
    assert table.schema.equals(manifest.pyarrow_schema(), check_metadata=False)
    schema = json.load(open(os.path.join(output, manifest.MANIFEST, manifest.SCHEMA_FILE)))
    assert schema == manifest.bigquery_schema()["fields"]
    for row in table.to_pylist():
        record = json.load(open(os.path.join(row["output"], "separation.json")))
        stats = record["analytics"]["stems"][row["stem"]]
        assert row["stem_uri"] == record["stems"][row["stem"]] and row["run_id"] == "r1"
        assert row["stem_checksum"] == record["stem_checksums"][row["stem"]]
        assert (row["loudness_lufs"], row["true_peak_dbtp"], row["audible_share"]) == (
            stats["loudness_lufs"], stats["true_peak_dbtp"], stats["audible_share"])
        assert row["instrumental"] == record["analytics"]["instrumental"]
    # the docs' query: the instrumental tracks
    vocals = table.filter(pc.and_(pc.equal(table["stem"], "vocals"), pc.equal(table["instrumental"], True)))
    expected = sorted(json.load(open(os.path.join(output, d, "separation.json")))["input"]
                      for d in ("a", "album/b", "__failed/c", "silent", "short")
                      if json.load(open(os.path.join(output, d, "separation.json")))["analytics"]["instrumental"])
    assert sorted(vocals["track"].to_pylist()) == expected and expected


def test_rebuild_reads_the_records_alone_and_skips_a_malformed_one(separated, tmp_path):
    root, output, _ = separated
    tree = str(tmp_path / "tree")
    shutil.copytree(output, tree)
    for folder in ("a", "silent"):  # no audio is read: the stems may be gone
        for stem in ("vocals.wav", "drums.wav"):
            os.remove(os.path.join(tree, folder, stem))
    os.makedirs(os.path.join(tree, "broken"))
    with open(os.path.join(tree, "broken", "separation.json"), "w") as f:
        f.write("{not json")
    os.makedirs(os.path.join(tree, "partial"))
    with open(os.path.join(tree, "partial", "separation.json"), "w") as f:
        json.dump({"input": "x.wav"}, f)  # no stems
    done = subprocess.run([sys.executable, "-m", "pipelines.manifest", tree], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": REPO}, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "broken" in done.stderr and "partial: a malformed record" in done.stderr and "10 rows" in done.stdout
    rebuilt = manifest_table(tree, "rebuilt").to_pylist()
    original = manifest_table(output, "r1").to_pylist()
    key = lambda row: (row["track"], row["stem"])  # noqa: E731
    drop = ("output", "stem_uri")  # the copy's paths differ
    assert sorted(({k: v for k, v in r.items() if k not in drop} for r in rebuilt), key=key) == \
        sorted(({k: v for k, v in r.items() if k not in drop} for r in original), key=key)


def test_the_manifest_on_gcs(gcs_emulator, tiny_model, tmp_path):
    """Beam's Parquet sink writes to gs:// (here the emulator), and the rebuild reads the records there."""
    local = tmp_path / "in"
    write_audio(str(local / "a.wav"), seconds=1.0, seed=5, subtype="FLOAT")
    source, output = f"gs://{gcs_emulator}/m-in", f"gs://{gcs_emulator}/m-out"
    storage.upload_dir(str(local), source)
    run_in_process(["--input", f"{source}/*.wav", "--output", output, "--model", tiny_model, "--run_id", "g1"])
    table = manifest_table(output, "g1")
    assert sorted(table["stem"].to_pylist()) == ["drums", "vocals"]
    assert manifest.rebuild(output, log=lambda line: None)[1:] == (2, [])


def test_analytics_off_writes_no_manifest(tiny_model, tmp_path):
    write_audio(str(tmp_path / "in" / "a.wav"), seconds=1.0, subtype="FLOAT")
    output = str(tmp_path / "out")
    run_in_process(["--input", str(tmp_path / "in" / "*.wav"), "--output", output, "--model", tiny_model,
                    "--analytics=false", "--run_id", "off"])
    assert "analytics" not in json.load(open(os.path.join(output, "a", "separation.json"))) or \
        json.load(open(os.path.join(output, "a", "separation.json")))["analytics"] is None
    assert not os.path.exists(os.path.join(output, manifest.MANIFEST))


def test_the_bigquery_sink_in_the_job_dataflow_would_run(monkeypatch, tmp_path):
    """--manifest_table on DataflowRunner, translated without submitting: the job writes the rows to
    that table with the manifest's schema, by file loads, appending, creating the table if needed."""
    from pipelines.catalog import run

    monkeypatch.chdir(tmp_path)
    result, _ = run(["--input", "gs://bucket/catalog/*.mp3", "--output", "gs://bucket/stems", "--model", "umxhq",
                     "--manifest_table", "my-project:catalog.stems", "--runner", "DataflowRunner",
                     "--project", "my-project", "--region", "us-central1", "--temp_location", "gs://bucket/tmp",
                     "--dry_run", "True", "--sdk_container_image", "img:1"])
    import ast

    from apache_beam.portability.api import beam_runner_api_pb2

    display = {}  # {(transform, key): value} of the BigQuery sink's parts
    for transform in result.job.proto_pipeline.components.transforms.values():
        if transform.unique_name.startswith("ManifestToBigQuery"):
            for item in transform.display_data:
                payload = beam_runner_api_pb2.LabelledPayload.FromString(item.payload)
                display[transform.unique_name, payload.key] = payload.string_value
    assert display["ManifestToBigQuery", "table"] == "my-project:catalog.stems"
    loads = {name: value for (name, key), value in display.items() if "TriggerLoadJobsWithoutTempTables" in name}
    parts = {(name.split("/")[2] if name.count("/") > 1 else name, key): v for (name, key), v in display.items()}
    assert any(name.startswith("ManifestToBigQuery/BigQueryBatchFileLoads") for name, _ in display)  # file loads
    assert parts["TriggerLoadJobsWithoutTempTables", "create_disposition"] == "CREATE_IF_NEEDED", loads
    assert parts["TriggerLoadJobsWithoutTempTables", "write_disposition"] == "WRITE_APPEND"
    schemas = {v for (name, key), v in display.items() if key == "schema"}
    assert schemas and all(ast.literal_eval(v) == manifest.bigquery_schema() for v in schemas)


def test_the_report_renders_its_figures_in_chromium(separated, tmp_path):
    """The report opened in headless Chromium: the page renders, with its four figures and the
    slowest-tracks table, and a screenshot that is not blank."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is a test dependency (make system-deps installs it)"
    root, output, _ = separated
    done = subprocess.run([sys.executable, "-m", "pipelines.report", output, "--out", str(tmp_path / "r.html")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO}, timeout=120)
    assert done.returncode == 0, done.stderr
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    url = (tmp_path / "r.html").as_uri()
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<svg") == 4 and dom.count("class=\"plot\"") == 4 and 'id="slowest"' in dom
    for title in ("Loudness per stem", "Vocal presence", "Audio hours per run", "Failures by stage"):
        assert title in dom
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1000,2400", url], capture_output=True,
                   timeout=120)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), np.float32)
    assert pixels.std() > 10  # drawn figures, not a blank page


def test_a_report_with_nothing_to_plot_says_so_in_words_and_each_heading_once(separated, monkeypatch, tmp_path,
                                                                              capsys):
    """An output with no tracks, runs or failures: each figure's place says in words what there is
    (no empty axes), and each heading appears once (the caption, not a second title inside the plot)."""
    from pipelines import report

    empty = report.render("gs://bucket/out", [], [], [])
    assert "<svg" not in empty and empty.count("class='plot'") == 4
    for words in ("No failures in any run.", "No run has finished yet.", "No complete track yet.", "No failures."):
        assert words in empty
    assert report.main([str(tmp_path / "no-such-output")]) == 2
    assert "no record, run summary or failure list" in capsys.readouterr().err
    _, output, _ = separated
    records, summaries, failures, _ = report.gather(output)
    import matplotlib.axes

    titles = []
    original = matplotlib.axes.Axes.set_title
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title",
                        lambda self, label, *a, **k: titles.append(label) or original(self, label, *a, **k))
    drawn = report.figures(records, summaries, failures)
    assert not titles and all(svg is not None for _, svg, _ in drawn)  # the caption is the one heading
    full = report.render(output, records, summaries, failures)
    assert all(full.count(caption) == 1 for caption, _, _ in drawn)
