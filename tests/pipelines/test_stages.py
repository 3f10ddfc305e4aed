"""The catalog job's stages in-process with Beam's TestPipeline (pipelines/stages.py)."""

import json
import os
import pickle
import tempfile
import uuid

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline

from pipelines.records import ListedRecord
from pipelines.records import fingerprint
from pipelines.stages import ClaimFolders, ExpandInputs, Plan, TrackJob
from tests.pipelines.conftest import write_audio
from umx_core import storage


def _keep(element, folder):
    with open(os.path.join(folder, uuid.uuid4().hex), "wb") as f:
        pickle.dump(element, f)


def run_dofn(dofn, elements, tags):
    """`{tag: [outputs]}` of one DoFn over `elements` in a TestPipeline (outputs kept on disk: the
    runner pickles every function, so nothing in this process's memory can collect them)."""
    with tempfile.TemporaryDirectory() as tmp:
        with BeamTestPipeline() as p:
            outputs = p | beam.Create(elements) | beam.ParDo(dofn).with_outputs(*tags, main="main")
            for tag in ("main", *tags):
                os.makedirs(os.path.join(tmp, tag))
                outputs[tag] | f"Keep {tag}" >> beam.Map(_keep, os.path.join(tmp, tag))
        return {tag: [pickle.load(open(os.path.join(tmp, tag, f), "rb")) for f in os.listdir(os.path.join(tmp, tag))]
                for tag in ("main", *tags)}


def test_expand_never_takes_the_output_as_input_and_reports_what_matches_nothing(tmp_path):
    root = str(tmp_path / "catalog")
    song = write_audio(os.path.join(root, "a", "song.wav"))
    output = os.path.join(root, "stems")
    write_audio(os.path.join(output, "a", "song", "vocals.wav"))  # a previous run's stems, inside the input tree
    sources = [("glob", os.path.join(root, "**")), ("glob", os.path.join(root, "typo*.wav")),
               ("glob", os.path.join(output, "**")), ("list", str(tmp_path / "missing.txt"))]
    out = run_dofn(ExpandInputs(output), sources, ["failed"])
    assert out["main"] == [(os.path.join(output, "a", "song"), (song, None))]  # locally no identity from a listing
    failed = {r["path"]: r for r in out["failed"]}
    assert set(failed) == {os.path.join(root, "typo*.wav"), os.path.join(output, "**"), str(tmp_path / "missing.txt")}
    assert all(r["stage"] == "match" and r["status"] == "failed" for r in failed.values())
    assert "matches no file" in failed[os.path.join(root, "typo*.wav")]["error"]
    assert "outside the output folder" in failed[os.path.join(output, "**")]["error"]


def test_two_inputs_for_one_folder_one_keeps_it_the_other_fails_naming_both(tmp_path):
    folder = str(tmp_path / "stems" / "song")
    found = [(folder, [("x/song.wav", None), ("x/song.flac", "{}"), ("x/song.wav", None)]),
             ("o/b", [("x/b.wav", None)]), ("o/gone", [ListedRecord()])]  # a listed folder no input maps to
    out = run_dofn(ClaimFolders(), found, ["failed"])
    assert sorted(out["main"], key=str) == [("x/b.wav", "o/b", None, None), ("x/song.flac", folder, "{}", None)]
    (refused,) = out["failed"]
    assert refused["path"] == "x/song.wav" and refused["stage"] == "output"
    assert "x/song.flac" in refused["error"] and folder in refused["error"]


def test_the_input_a_folder_already_holds_keeps_it(tmp_path):
    folder = str(tmp_path / "song")
    os.makedirs(folder)
    with open(os.path.join(folder, "separation.json"), "w") as f:
        json.dump({"input": "x/song.wav"}, f)
    out = run_dofn(ClaimFolders(), [(folder, [("x/song.flac", None), ("x/song.wav", None)])], ["failed"])
    assert out["main"] == [("x/song.wav", folder, None, None)]
    assert [r["path"] for r in out["failed"]] == ["x/song.flac"]


def test_plan_skips_complete_refuses_another_inputs_folder_and_probes_the_rest(tmp_path):
    fp = fingerprint({"niter": 1}, "digest")
    tracks = {}
    for name, record in [("done", {"fingerprint": fp}), ("stale", {"fingerprint": "other"}),
                         ("taken", {"fingerprint": fp, "input": "elsewhere.wav"}), ("new", None)]:
        path = write_audio(str(tmp_path / "in" / f"{name}.wav"), seconds=0.5)
        out = str(tmp_path / "out" / name)
        if record is not None:
            os.makedirs(out)
            with open(os.path.join(out, "separation.json"), "w") as f:
                json.dump({"input": path, "input_identity": storage.identity(path), **record}, f)
        tracks[name] = (path, out)
    result = run_dofn(Plan(fp, overwrite=False), list(tracks.values()), ["skipped", "failed"])
    assert sorted(result["main"], key=str) == sorted(
        (TrackJob(*tracks[n], 0.5, storage.identity(tracks[n][0])) for n in ("stale", "new")), key=str)
    assert [r["path"] for r in result["skipped"]] == [tracks["done"][0]]
    (taken,) = result["failed"]
    assert taken["stage"] == "output" and "elsewhere.wav" in taken["error"] and "--overwrite" in taken["error"]
    assert fingerprint({"niter": 1}, "digest") != fingerprint({"niter": 1}, "other weights")


def test_the_whole_graph_in_process(tmp_path, tiny_model):
    """`build` into a TestPipeline with assert_that on the summary, and `run(test_pipeline=...)`."""
    from apache_beam.testing.util import assert_that, equal_to

    from pipelines import options as job_options
    from pipelines.catalog import build, run

    root = str(tmp_path / "in")
    for k in range(2):
        write_audio(os.path.join(root, f"t{k}.wav"), seconds=0.6, seed=k)
    with open(os.path.join(root, "broken.wav"), "w") as f:
        f.write("not audio")
    argv = ["--input", os.path.join(root, "*.wav"), "--output", str(tmp_path / "out"), "--model", tiny_model,
            "--codec", "wav"]
    options, _ = job_options.parse_known_args(argv)
    with BeamTestPipeline() as p:
        summary = build(p, options, "graph")
        counts = summary | beam.Map(lambda s: (s["found"], s["separated"], s["skipped"], s["failed"]))
        assert_that(counts, equal_to([(3, 2, 0, 1)]))
    assert sorted(os.listdir(tmp_path / "out" / "t0")) == ["drums.wav", "separation.json", "vocals.wav"]
    _, again = run(argv + ["--run_id", "again"], test_pipeline=BeamTestPipeline())
    summary = json.load(open(tmp_path / "out" / "_runs" / "again.json"))
    assert again.run_id == "again" and (summary["skipped"], summary["separated"], summary["failed"]) == (2, 0, 1)
