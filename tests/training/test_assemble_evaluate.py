"""Independent training joined by `training.assemble`; `training.evaluate` against museval."""

import json
import os
import shutil

import museval
import numpy as np
import pytest
import soundfile as sf

from training import assemble, evaluate, scores
from training import config as configuration
from training.synthesize import synthesize
from training.train import Trainer
from umx_core.errors import UMXError
from umx_core.pretrained import load_separator

RATE = 8000
TINY = dict(sample_rate=RATE, n_fft=256, n_hop=64, hidden_size=16, nb_layers=1, seq_duration=1.0,
            samples_per_track=4, batch_size=4, epochs=1, audio_examples=0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("eval-data"))
    synthesize(out, tracks=4, targets=["vocals", "drums", "bass"], duration=2.0, rate=RATE, seed=9, test_tracks=2)
    return out


@pytest.fixture(scope="module")
def solo_runs(data, tmp_path_factory):
    """One single-target run per target, each trained on the full mixture."""
    runs = {}
    for target in ("vocals", "drums"):
        out = str(tmp_path_factory.mktemp(f"run-{target}"))
        Trainer(configuration.resolve(None, root=data, targets=[target], **TINY), out).run()
        runs[target] = out
    return runs


def test_assembled_separator_equals_its_parts(solo_runs, tmp_path):
    out = str(tmp_path / "joint")
    assert assemble.main([solo_runs["vocals"], solo_runs["drums"] + "/separator", "--out", out]) == 0
    joint = load_separator(out + "/separator", niter=0)
    assert joint.targets == ["vocals", "drums"] and load_separator(out + "/saved_model").niter == 1
    meta = json.loads(open(os.path.join(out, "separator", "separator.json")).read())["assembled_from"]
    assert [m["targets"] for m in meta] == [["vocals"], ["drums"]] and meta[0]["training"]["interferers"]
    mixture = np.random.default_rng(3).standard_normal((1, 2, RATE)).astype(np.float32) * 0.1
    estimates = np.asarray(joint(mixture))
    for k, target in enumerate(joint.targets):
        alone = np.asarray(load_separator(solo_runs[target] + "/separator", niter=0)(mixture))
        np.testing.assert_allclose(estimates[:, k], alone[:, 0], atol=1e-6)


def test_assemble_refuses_duplicates_and_mismatches(solo_runs, data, tmp_path):
    with pytest.raises(UMXError, match="target 'vocals' is also in"):
        assemble.assemble([solo_runs["vocals"], solo_runs["vocals"]], str(tmp_path / "a"))
    other = str(tmp_path / "other")
    Trainer(configuration.resolve(None, root=data, targets=["bass"],
                                  **{**TINY, "n_hop": 128}), other).run()
    with pytest.raises(UMXError, match="does not match.*n_hop"):
        assemble.assemble([solo_runs["vocals"], other], str(tmp_path / "b"))


def test_evaluate_scores_with_museval_and_baselines(solo_runs, data, tmp_path):
    model = solo_runs["vocals"] + "/separator"
    out = str(tmp_path / "eval")
    assert evaluate.main(["--model", model, "--root", data, "--out", out, "--baselines"]) == 0
    results = json.load(open(os.path.join(out, "results.json")))["results"]
    summary = json.load(open(os.path.join(out, "summary.json")))["median"]
    assert sorted(results) == ["irm", "mixture", "model"] and sorted(results["model"]) == ["track0004", "track0005"]
    # the model row is museval on the separator's own output, drums + bass scored as the rest
    separator = load_separator(model)
    folder = os.path.join(data, "test", "track0005")
    files = {t: sf.read(os.path.join(folder, f"{t}.wav"), dtype="float32")[0] for t in ("vocals", "drums", "bass")}
    mixture = sum(files.values())
    estimate = np.asarray(separator(mixture.T[None]))[0, 0].T
    references = np.stack([files["vocals"], files["drums"] + files["bass"]])
    scores = museval.evaluate(references, np.stack([estimate, mixture - estimate]), win=RATE, hop=RATE)
    row = results["model"]["track0005"]["vocals"]
    for name, values in zip(("SDR", "ISR", "SIR", "SAR"), scores):
        assert row[name] == pytest.approx(np.nanmedian(values[0]), abs=1e-4), name
    # the oracle beats the mixture on every track; medians are medians over tracks
    for track in results["irm"]:
        assert results["irm"][track]["vocals"]["SDR"] > results["mixture"][track]["vocals"]["SDR"] + 3
    values = [results["model"][t]["vocals"]["ISR"] for t in results["model"]]
    assert summary["model"]["vocals"]["ISR"] == pytest.approx(np.median(values))
    # the songs behind each median, as results.json has them
    written = json.load(open(os.path.join(out, "summary.json")))
    assert written["songs"] == len(os.listdir(os.path.join(data, "test"))) == 2
    assert written["scored"] == {m: {"vocals": sum(results[m][k]["vocals"]["SDR"] is not None for k in results[m])}
                                 for m in results}
    with open(os.path.join(out, "sdr.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_scored_counts_the_songs_behind_each_median():
    def row(sdr):
        return {"SDR": sdr, "ISR": 1.0, "SIR": 1.0, "SAR": 1.0}

    results = {"model": {"a": {"vocals": row(3.0), "bass": row(None)}, "b": {"vocals": row(1.0), "bass": row(None)},
                         "c": {"vocals": row(None), "bass": row(2.0)}}}
    assert scores.scored(results) == {"model": {"vocals": 2, "bass": 1}}
    assert scores.summarize(results)["model"]["vocals"]["SDR"] == 2.0  # the median of the two scored
    assert "songs 2" in scores.format_table(scores.summarize(results), scores.scored(results))


def test_scoring_in_worker_processes_gives_the_same_scores(solo_runs, data):
    separator = load_separator(solo_runs["vocals"] + "/separator")
    said = {1: [], 2: []}
    one, two = (evaluate.evaluate(data, separator, baselines=True, log=said[jobs].append, jobs=jobs) for jobs in (1, 2))
    assert sorted(two["model"]) == ["track0004", "track0005"]
    flat = [(m, k, t, metric, v) for m in one for k in one[m] for t in one[m][k] for metric, v in one[m][k][t].items()]
    for method, track, target, metric, value in flat:  # one BLAS thread a worker: equal to rounding
        other = two[method][track][target][metric]
        if value > 100:  # the mixture baseline's SAR: no artefact at all, a ratio of rounding errors
            assert other > 100, (method, track, target, metric)
        else:
            assert other == pytest.approx(value, rel=1e-6, abs=1e-9), (method, track, target, metric)
    assert [line.split(":")[0] for line in said[2]] == ["track0004", "track0005"]  # logged in track order
    assert evaluate.scoring_pool(1) is None
    pool = evaluate.scoring_pool(2)
    try:
        assert pool.apply_async(os.getpid).get() != os.getpid()  # the scoring runs elsewhere
        assert pool.apply_async(os.getenv, ("OPENBLAS_NUM_THREADS",)).get() == "1"
    finally:
        pool.terminate()
    assert "OPENBLAS_NUM_THREADS" not in os.environ or os.environ["OPENBLAS_NUM_THREADS"] != "1"


def test_ideal_ratio_mask_equals_a_power_ratio_mask_by_hand():
    """Three targets and a leftover the mixture holds beyond them: each target's estimate is the
    mixture STFT masked by its power share of the four sources, computed here with torch's STFT."""
    import torch

    rng = np.random.default_rng(0)
    n_fft, hop, samples = 256, 64, 6000
    stems = (rng.standard_normal((3, 2, samples)) * np.array([1.0, 0.5, 0.2])[:, None, None]).astype(np.float32)
    rest = 0.3 * rng.standard_normal((2, samples)).astype(np.float32)
    mixture = stems.sum(axis=0) + rest
    window = torch.hann_window(n_fft)
    spec = lambda x: torch.stft(torch.from_numpy(x).double(), n_fft, hop, window=window.double(),  # noqa: E731
                                center=True, return_complex=True)
    power = torch.stack([spec(s).abs() ** 2 for s in [*stems, rest]])  # (sources, channels, bins, frames)
    masks = power / power.sum(dim=0, keepdim=True)
    expected = torch.stack([torch.istft(m * spec(mixture), n_fft, hop, window=window.double(), length=samples)
                            for m in masks[:3]]).numpy()
    estimates = evaluate.ideal_ratio_mask(mixture, stems, n_fft, hop)
    inner = slice(n_fft, samples - n_fft)  # the transforms pad the ends differently
    np.testing.assert_allclose(estimates[..., inner], expected[..., inner], atol=2e-4)
    assert np.abs(estimates - stems).max() > 0.05  # masks, not the stems themselves


def test_evaluate_names_a_broken_track(solo_runs, data, tmp_path, capsys):
    broken = str(tmp_path / "broken")
    shutil.copytree(data, broken)
    os.remove(os.path.join(broken, "test", "track0004", "vocals.wav"))
    code = evaluate.main(["--model", solo_runs["vocals"] + "/separator", "--root", broken,
                          "--out", str(tmp_path / "e")])
    assert code == 2 and "track0004: no file for target(s) ['vocals']" in capsys.readouterr().err


def test_a_track_with_a_silent_target_is_skipped_and_said(data, tmp_path):
    quiet = str(tmp_path / "quiet")
    shutil.copytree(data, quiet)
    path = os.path.join(quiet, "test", "track0004", "vocals.wav")
    audio, rate = sf.read(path)
    sf.write(path, np.zeros_like(audio), rate, subtype="PCM_16")
    said = []
    results = evaluate.evaluate(quiet, targets=["vocals", "drums"], baselines=True, log=said.append)
    assert sorted(results["irm"]) == ["track0005"]
    assert "track0004: skipped, vocals silent throughout" in said


def test_audible_db_leaves_out_the_seconds_where_a_target_is_near_silent(data, tmp_path):
    # vocals that stop after 1 s, leaving noise 90 dB down (a reverb tail, a few LSBs): museval scores
    # those seconds, --audible-db 50 does not
    quiet = str(tmp_path / "tail")
    shutil.copytree(data, quiet)
    path = os.path.join(quiet, "test", "track0004", "vocals.wav")
    vocals, rate = sf.read(path, dtype="float32")
    tail = np.random.default_rng(3).standard_normal(vocals[rate:].shape).astype(np.float32) * 3e-5
    vocals[rate:] = tail * np.sqrt(np.mean(vocals[:rate] ** 2)) * 10
    sf.write(path, vocals, rate, subtype="FLOAT")
    folder = os.path.dirname(path)
    stems = {t: sf.read(os.path.join(folder, f"{t}.wav"), dtype="float32")[0] for t in ("vocals", "drums", "bass")}
    mixture = sum(stems.values())
    references = np.stack([stems["vocals"], stems["drums"], stems["bass"]])
    sdr = museval.evaluate(references, np.stack([mixture] * 3), win=rate, hop=rate)[0]  # the mixture baseline
    level = [10 * np.log10(np.sum(stems["vocals"][i * rate:(i + 1) * rate] ** 2)
                           / np.sum(mixture[i * rate:(i + 1) * rate] ** 2)) for i in range(sdr.shape[1])]
    assert level[0] > -50 > max(level[1:])  # the second second is the tail's

    medians = {}
    for extra in ([], ["--audible-db", "50"]):
        out = str(tmp_path / f"e{len(extra)}")
        assert evaluate.main(["--root", quiet, "--targets", "vocals", "drums", "bass", "--baselines",
                              "--out", out] + extra) == 0
        written = json.load(open(os.path.join(out, "summary.json")))
        assert written["audible_db"] == (50.0 if extra else None)
        medians[len(extra)] = json.load(open(os.path.join(out, "results.json")))["results"]["mixture"]["track0004"]
    assert medians[0]["vocals"]["SDR"] == pytest.approx(np.nanmedian(sdr[0]), abs=1e-4)
    assert medians[2]["vocals"]["SDR"] == pytest.approx(sdr[0, 0], abs=1e-4)  # the one audible second
    assert medians[2]["vocals"]["SDR"] > medians[0]["vocals"]["SDR"] + 20
    for target, row in (("drums", 1), ("bass", 2)):  # audible throughout: scored as museval scores them
        assert medians[2][target]["SDR"] == pytest.approx(np.nanmedian(sdr[row]), abs=1e-4)


def test_inaudible_windows_are_museval_windows():
    rate = 100
    stems = np.ones((2, 2, 350), np.float32)
    stems[0, :, 200:] = 1e-4  # 80 dB down from sample 200 on: museval's third window (200-299)
    mixture = stems.sum(axis=0)
    quiet = evaluate.inaudible_windows(mixture, stems, rate, 3, 60)
    np.testing.assert_array_equal(quiet, [[False, False, True], [False, False, False]])
    assert not evaluate.inaudible_windows(mixture, stems, rate, 3, 90).any()
