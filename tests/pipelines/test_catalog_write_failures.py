"""The catalog job when writing fails (issue 15): a full local disk fails the track being staged
and no other."""

import errno
import os

import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline

from pipelines import catalog
from tests.pipelines.conftest import check_records, failure_records, run_summary, write_audio
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


def test_a_full_disk_fails_the_track_being_staged_and_no_other(tmp_path, tiny_model, monkeypatch, capsys,
                                                             main_in_process):
    source, output = str(tmp_path / "in"), str(tmp_path / "out")
    _catalog(source)
    write = encode.StemWriters.write

    def disk_full_for_t1(self, stems):
        if os.path.basename(self.folder) == "t1":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), next(iter(self.parts.values())))
        return write(self, stems)

    monkeypatch.setattr(encode.StemWriters, "write", disk_full_for_t1)
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
    assert "No space left on device" in failed["error"]
    assert sorted(check_records(output)) == ["t0", "t2"]
    assert os.listdir(os.path.join(output, "t1")) == []  # its half-written stems removed, freeing the disk
