"""The `umx` command end to end on generated audio."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import random_filters
from umx_core import Separator
from umx_core.cli import main
from umx_core.pretrained import load_separator

RATE = 8000
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A saved 3-target separator at 8 kHz (small, several chunks per file)."""
    filters = random_filters(("vocals", "drums", "bass"))
    path = str(tmp_path_factory.mktemp("model") / "sep")
    Separator(filters, sample_rate=RATE, n_fft=256, n_hop=64, wiener_win_len=20, context=4).save(path)
    return path


@pytest.fixture
def songs(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for k, seconds in enumerate((3.0, 2.0)):
        audio = (rng.standard_normal((int(seconds * RATE), 2)) * 0.1).astype(np.float32)
        path = tmp_path / f"song{k}.wav"
        sf.write(path, audio, RATE, subtype="FLOAT")
        paths.append(str(path))
    return paths


def stem(path):
    return sf.read(path, dtype="float32", always_2d=True)[0].T


@pytest.mark.parametrize("runtime", ["xla", "openvino"])
def test_several_inputs_one_broken(model, songs, tmp_path, capsys, runtime):
    """The same outcome on either network runtime: the broken input named, the others separated."""
    if runtime == "openvino":
        pytest.importorskip("openvino")
    broken = tmp_path / "broken.wav"
    broken.write_text("not audio")
    out = tmp_path / "out"
    code = main([songs[0], str(broken), songs[1], "--model", model, "--outdir", str(out), "--runtime", runtime])
    captured = capsys.readouterr()
    assert code == 2
    assert "broken.wav: not a readable audio file" in captured.err and captured.err.count("umx: error") == 1
    for song, seconds in zip(songs, (3.0, 2.0)):
        name = os.path.basename(song)[:-4]
        assert sorted(os.listdir(out / name)) == ["bass.wav", "drums.wav", "vocals.wav"]
        assert stem(out / name / "vocals.wav").shape == (2, int(seconds * RATE))
        assert f"{song}: 0:0{int(seconds)}.0 in" in captured.out and "real time" in captured.out
    assert not (out / "broken").exists() or os.listdir(out / "broken") == []
    # the defaults are open-unmix's: niter 1, wiener_win_len 300
    separator = load_separator(model, niter=1, wiener_win_len=300)
    expected = separator(stem(songs[1])[None])[0]
    np.testing.assert_allclose(stem(out / "song1" / "drums.wav"), expected[1], atol=1e-5)


def test_start_duration_targets_residual_and_aggregate(model, songs, tmp_path):
    out = tmp_path / "out"
    args = [songs[0], "--model", model, "--outdir", str(out), "--start", "0.5", "--duration", "1.25",
            "--targets", "vocals", "drums", "--residual", "backing", "--niter", "0"]
    assert main(args) == 0
    assert sorted(os.listdir(out / "song0")) == ["backing.wav", "drums.wav", "vocals.wav"]
    excerpt = stem(songs[0])[:, 4000:14000]
    separator = load_separator(model, targets=["vocals", "drums"], residual=True, niter=0, wiener_win_len=300)
    expected = separator(excerpt[None])[0]
    np.testing.assert_allclose(stem(out / "song0" / "backing.wav"), expected[2], atol=1e-6)
    np.testing.assert_allclose(stem(out / "song0" / "vocals.wav"), expected[0], atol=1e-6)

    agg = tmp_path / "agg"
    spec = json.dumps({"vocals": ["vocals"], "accompaniment": ["drums", "bass"]})
    assert main([songs[1], "--model", model, "--outdir", str(agg), "--aggregate", spec, "--ext", ".flac"]) == 0
    assert sorted(os.listdir(agg / "song1")) == ["accompaniment.flac", "vocals.flac"]
    full = load_separator(model, niter=1, wiener_win_len=300)(stem(songs[1])[None])[0]
    np.testing.assert_allclose(stem(agg / "song1" / "accompaniment.flac"), full[1] + full[2], atol=1e-5)


def test_default_outdir_globs_and_folders(model, songs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([os.path.join(os.path.dirname(songs[0]), "song*.wav"), "--model", model, "--targets", "bass",
                 "--niter", "0"]) == 0
    assert os.listdir(tmp_path / "song0_sep") == ["bass.wav"] and os.listdir(tmp_path / "song1_sep") == ["bass.wav"]


@pytest.mark.parametrize("args,message", [
    (["--aggregate", "{not json"], "--aggregate is not valid JSON"),
    (["--aggregate", '{"x": ["piano"]}'], "--aggregate names sources the model does not give: ['piano']"),
    (["--targets", "piano"], "no target(s) ['piano']"),
    (["--ext", "aiff"], "--ext must be one of"),
    (["--model", "no-such-model"], "'no-such-model': not a shipped model"),
])
def test_bad_options_are_one_clear_line(model, songs, tmp_path, capsys, args, message):
    base = [songs[0], "--model", model, "--outdir", str(tmp_path / "o")]
    assert main(base + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "o").exists()


def test_help_and_list_models_do_not_start_tensorflow():
    code = ("import sys; from umx_core.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "main(['--list-models'])\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": REPO}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--audio-backend" in proc.stdout and "--wiener-win-len" in proc.stdout
    assert "umxl" in proc.stdout and "NON-COMMERCIAL" in proc.stdout and "demo-5stems" in proc.stdout


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg program is not installed (CI installs it)")
def test_ffmpeg_backend_reads_m4a_and_stem_mp4(model, songs, tmp_path, capsys):
    """AAC in .m4a, and the mixture stream of a .stem.mp4 (not its silent second stream), give the
    stems of the WAV they were encoded from, to the codec's loss."""
    from tests.umx_core.test_stream import snr_db

    assert main([songs[0], "--model", model, "--outdir", str(tmp_path / "w")]) == 0
    reference = stem(tmp_path / "w" / "song0" / "vocals.wav")
    m4a = tmp_path / "song.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", songs[0], "-c:a", "aac", "-b:a", "128k", str(m4a)], check=True)
    assert main([str(m4a), "--model", model, "--outdir", str(tmp_path / "o")]) == 2  # soundfile cannot
    assert "song.m4a: not a readable audio file" in capsys.readouterr().err
    assert main([str(m4a), "--model", model, "--outdir", str(tmp_path / "o"), "--audio-backend", "ffmpeg"]) == 0
    vocals = stem(tmp_path / "o" / "song" / "vocals.wav")
    assert 0 <= vocals.shape[-1] - 3 * RATE <= 1024  # AAC pads its last frame
    assert snr_db(reference, vocals) > 6 and snr_db(reference, np.roll(vocals, 64, axis=-1)) < 3
    # .stem.mp4: the first audio stream is the mixture; a silent second stream must not be used
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((3 * RATE, 2), np.float32), RATE)
    mp4 = tmp_path / "track.stem.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", songs[0], "-i", str(silent), "-map", "0:a", "-map", "1:a",
                    "-c:a", "aac", str(mp4)], check=True)
    assert main([str(mp4), "--model", model, "--outdir", str(tmp_path / "s"), "--audio-backend", "ffmpeg"]) == 0
    assert snr_db(reference, stem(tmp_path / "s" / "track" / "vocals.wav")) > 6


def test_missing_ffmpeg_is_named(model, songs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main([songs[0], "--model", model, "--outdir", str(tmp_path / "o"), "--audio-backend", "ffmpeg"]) == 2
    assert "needs the ffmpeg program" in capsys.readouterr().err


def test_em_and_device_options_reach_the_separator(model, songs, tmp_path, capsys, monkeypatch):
    from umx_core import pretrained

    seen = []

    def spy(path, **kwargs):  # what main hands load_separator, and what the device then was
        seen.append((path, kwargs, os.environ.get("CUDA_VISIBLE_DEVICES")))
        seen.append(real(path, **kwargs))
        return seen[-1]

    real = pretrained.load_separator
    monkeypatch.setattr(pretrained, "load_separator", spy)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    out = tmp_path / "out"
    args = [songs[1], "--model", model, "--outdir", str(out), "--softmask", "--niter", "2", "--wiener-win-len", "50",
            "--filterbank", "tf", "--no-cuda", "--verbose", "--batch-frames", "300", "--ext", "wav"]
    assert main(args) == 0
    (path, kwargs, cuda), separator = seen
    assert path == model and cuda == ""  # --no-cuda hides the GPUs before TensorFlow starts
    assert (kwargs["batch_frames"], kwargs["filterbank"], kwargs["niter"], kwargs["softmask"],
            kwargs["wiener_win_len"]) == (300, "tf", 2, True, 50)
    assert (separator.batch_frames, separator.filterbank, separator.niter) == (300, "tf", 2)
    err = capsys.readouterr().err
    assert "niter 2" in err and "8000 Hz" in err
    expected = load_separator(model, niter=2, softmask=True, wiener_win_len=50)(stem(songs[1])[None])[0]
    np.testing.assert_allclose(stem(out / "song1" / "bass.wav"), expected[2], atol=1e-6)
    hard = load_separator(model, niter=2, wiener_win_len=50)(stem(songs[1])[None])[0]
    assert np.abs(hard[2] - expected[2]).max() > 1e-4  # --softmask changed the result


def test_two_inputs_for_one_folder_never_overwrite_each_other(model, songs, tmp_path, capsys):
    """`umx a/mix.wav b/mix.wav --outdir o`: a/mix.wav keeps o/mix, b/mix.wav is refused naming both."""
    first, second = tmp_path / "a" / "mix.wav", tmp_path / "b" / "mix.wav"
    for src, dst in zip(songs, (first, second)):
        dst.parent.mkdir()
        shutil.copy(src, dst)
    out = tmp_path / "o"
    assert main([str(second), str(first), "--model", model, "--outdir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(second) in err[0] and str(first) in err[0], err
    expected = load_separator(model, niter=1, wiener_win_len=300)(stem(songs[0])[None])[0]  # a/mix.wav's stems, not b's
    np.testing.assert_allclose(stem(out / "mix" / "vocals.wav"), expected[0], atol=1e-5)


def test_rerun_into_a_folder_inside_the_input_takes_no_stems_as_input(model, songs, tmp_path, capsys):
    out = tmp_path / "stems"
    assert main([str(tmp_path), "--model", model, "--outdir", str(out)]) == 0
    assert main([str(tmp_path), "--model", model, "--outdir", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["song0", "song1"]


def test_stderr_has_our_words_not_tensorflows(model, songs, tmp_path):
    """A fresh process as a user starts it: TensorFlow's native start-up lines stay off stderr,
    and --verbose lets them through."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = REPO
    native = __import__("re").compile(r"^[IWEF]\d{4} |absl::InitializeLog|oneDNN|cuInit", __import__("re").M)
    missing = str(tmp_path / "missing.wav")
    args = [sys.executable, "-m", "umx_core", songs[0], missing, "--model", model, "--outdir", str(tmp_path / "o")]
    quiet = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert quiet.returncode == 2
    assert quiet.stderr.strip().splitlines() == [f"umx: error: {missing}: no such file"], quiet.stderr
    verbose = subprocess.run(args + ["--verbose"], capture_output=True, text=True, env=env, timeout=300)
    assert native.search(verbose.stderr), verbose.stderr  # the lines exist and are ours to hide


def test_stats_count_the_vocal_segments_and_list_the_first_few():
    from umx_core.cli.main import stats_lines

    quiet = {"loudness_lufs": None, "sample_peak_dbfs": None, "true_peak_dbtp": None}
    segments = [[10.0 * k, 10.0 * k + 2.5] for k in range(8)]
    analytics = {"mixture": quiet, "stems": {"vocals": quiet}, "vocal_segments": segments, "instrumental": False}
    last = stats_lines(analytics)[-1]
    assert last.startswith("  vocal segments: 8, 20.0 s in all: 0.0-2.5 s, 10.0-12.5 s")
    assert "40.0-42.5 s, and 3 more" in last and "50.0" not in last
    assert stats_lines(analytics, None)[-1].endswith("70.0-72.5 s")
    assert stats_lines({**analytics, "vocal_segments": [], "instrumental": True})[-1] == "  instrumental"
    assert len(stats_lines({**analytics, "vocal_segments": None, "instrumental": None})) == 2  # no vocals stem
