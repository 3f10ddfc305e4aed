"""The catalog job when writing fails (issue 15): a full local disk fails the track being staged
and no other; the run's own files (`_runs/RUN.json`, `_failed/RUN.jsonl`) failing to be written
never undo the tracks' work, and the command says which file is missing."""

import errno
import os
import shutil

import pytest
import soundfile
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline

from pipelines import catalog
from tests.faults import FaultProxy
from tests.pipelines.conftest import check_records, failure_records, run_summary, write_audio
from umx_core import storage
from umx_core.storage import gcs_client
from umx_core.audio import encode


@pytest.fixture
def main_in_process(monkeypatch):
    """`catalog.main(argv)` whose job runs in this process (Beam's TestPipeline)."""
    run = catalog.run
    monkeypatch.setattr(catalog, "run", lambda argv, wait=True: run(argv, test_pipeline=BeamTestPipeline(),
                                                                    wait=wait))
    return catalog.main


def _catalog(source, broken=False):
    """Three short tracks in a local folder (and a file that is not audio)."""
    for seed, name in enumerate(("t0", "t1", "t2")):
        write_audio(os.path.join(source, f"{name}.wav"), 0.8, seed=seed, subtype="FLOAT")
    if broken:
        with open(os.path.join(source, "broken.wav"), "wb") as f:
            f.write(b"not audio\n" * 20)


@pytest.mark.parametrize("error", ["ENOSPC", "libsndfile"])
def test_a_full_disk_fails_the_track_being_staged_and_no_other(error, tmp_path, tiny_model, monkeypatch, capsys,
                                                             main_in_process):
    """OSError(ENOSPC) from the writer, or what libsndfile raises on a full disk (a "System error"
    without errno, told by the disk's free space)."""
    source, output = str(tmp_path / "in"), str(tmp_path / "out")
    _catalog(source)
    write, disk_usage = encode.StemWriters.write, shutil.disk_usage

    def disk_full_for_t1(self, stems):
        if os.path.basename(self.folder) == "t1":
            if error == "ENOSPC":
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), next(iter(self.parts.values())))
            raise soundfile.LibsndfileError(2, "Error writing: ")  # 2: SFE_SYSTEM, "System error."
        return write(self, stems)

    def nearly_full(path):
        usage = disk_usage(path)
        return usage._replace(free=4096) if str(path).startswith(output) else usage

    monkeypatch.setattr(encode.StemWriters, "write", disk_full_for_t1)
    if error == "libsndfile":
        monkeypatch.setattr(shutil, "disk_usage", nearly_full)
    code = main_in_process(["--input", f"{source}/*.wav", "--output", output, "--model", tiny_model, "--codec", "wav",
                            "--run_id", "full"])
    out = capsys.readouterr().out
    assert code == 0 and "found 3, separated 2, skipped 0, failed 1" in out, out
    summary = run_summary(output, "full")
    assert (summary["found"], summary["separated"], summary["failed"]) == (3, 2, 1)
    (failed,) = failure_records(output, "full")
    t1 = os.path.join(source, "t1.wav")
    assert failed["path"] == t1 and failed["stage"] == "write" and failed["output"] == os.path.join(output, "t1")
    assert failed["error"].startswith(f"{t1}: ") and f"the disk holding {output}/t1 is full" in failed["error"]
    assert ("No space left on device" if error == "ENOSPC" else "System error") in failed["error"]
    assert sorted(check_records(output)) == ["t0", "t2"]
    assert os.listdir(os.path.join(output, "t1")) == []  # its half-written stems removed, freeing the disk


def test_a_summary_that_cannot_be_written_leaves_the_tracks_done(gcs_emulator, tiny_model, tmp_path, monkeypatch,
                                                                capsys, caplog, main_in_process):
    """`_runs/RUN.json` answered by 503 on every try: the job ends, the tracks' stems and records and
    the failure list stay, and the command names the summary and gives the counts it would have held."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    root = f"gs://{gcs_emulator}/summary-503"
    _catalog(str(tmp_path), broken=True)
    storage.upload_dir(str(tmp_path), f"{root}/in")
    monkeypatch.setattr(gcs_client, "RETRY", DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.2).with_timeout(2))
    upstream = os.environ["STORAGE_EMULATOR_HOST"]
    with FaultProxy(upstream, {}, lifetime=300, always={"_runs": "503"}) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        code = main_in_process(["--input", f"{root}/in/*.wav", "--output", f"{root}/out", "--model", tiny_model,
                                "--codec", "wav", "--run_id", "lost"])
        refused = proxy.counts["always"]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", upstream)
    err = capsys.readouterr().err
    assert refused >= 2, "the summary's requests were not retried"
    summary = f"{root}/out/_runs/lost.json"
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR" and r.name == "pipelines.summary"]
    assert len(logged) == 1 and logged[0].startswith(f"{summary}: the run's own file could not be written")
    assert "GCS metadata read failed (ServiceUnavailable" in logged[0]
    assert code == 1 and f"the run wrote no summary ({summary}: " in err, err
    assert "its counters: found 4, separated 3, skipped 0, failed 1" in err, err
    assert not storage.exists(f"{root}/out/_runs/lost.json")
    assert sorted(check_records(f"{root}/out")) == ["t0", "t1", "t2"]
    assert [r["stage"] for r in failure_records(f"{root}/out", "lost")] == ["decode"]


def test_a_failure_list_that_cannot_be_written_is_named_in_the_summary(tmp_path, tiny_model, monkeypatch, capsys,
                                                                       main_in_process):
    source, output = str(tmp_path / "in"), str(tmp_path / "out")
    _catalog(source, broken=True)
    write_bytes = storage.write_bytes

    def refuse_failure_lists(path, data, **kwargs):
        if f"{os.sep}_failed{os.sep}" in path:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), path)
        return write_bytes(path, data, **kwargs)

    monkeypatch.setattr(storage, "write_bytes", refuse_failure_lists)
    code = main_in_process(["--input", f"{source}/*.wav", "--output", output, "--model", tiny_model, "--codec", "wav",
                            "--run_id", "nolist"])
    err = capsys.readouterr().err
    failure_list = os.path.join(output, "_failed", "nolist.jsonl")
    assert code == 1 and f"separate_catalog: error: {failure_list}: the run's own file could not be written" in err
    summary = run_summary(output, "nolist")
    assert (summary["separated"], summary["failed"]) == (3, 1) and summary["errors"][0].startswith(failure_list)
    assert sorted(check_records(output)) == ["t0", "t1", "t2"]
