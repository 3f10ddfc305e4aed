"""Streamed file-to-file separation against the in-memory Separator."""

import os

import numpy as np
import pytest
import soundfile as sf
import soxr

from tests.conftest import random_filters
from umx_core import Separator, storage
from umx_core.errors import UMXError
from umx_core.outputs import output_name
from umx_core.stream import separate_file

RATE = 8000


@pytest.fixture(scope="module")
def separator():
    """A small model cut into many chunks and groups (segment 20 frames, 3 chunks per call)."""
    filters = random_filters(("vocals", "drums"))
    return Separator(filters, niter=1, residual=True, sample_rate=RATE, n_fft=256, n_hop=64, wiener_win_len=20,
                     context=4, batch_frames=100)


def noise(seconds, channels=2, seed=0, rate=RATE):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((channels, int(seconds * rate))) * 0.1).astype(np.float32)


def read_stems(result, names):
    return np.stack([sf.read(result.stems[n], dtype="float32", always_2d=True)[0].T for n in names])


def test_streamed_equals_in_memory(separator, tmp_path):
    audio = noise(7.3)
    sf.write(tmp_path / "in.wav", audio.T, RATE, subtype="FLOAT")
    result = separate_file(str(tmp_path / "in.wav"), str(tmp_path / "out"), separator)
    assert sorted(result.stems) == ["drums", "residual", "vocals"] and result.duration == pytest.approx(7.3)
    expected = separator(audio[None])[0]
    assert np.isfinite(expected).all() and np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(read_stems(result, separator.sources), expected, atol=1e-6)
    assert sorted(os.listdir(tmp_path / "out")) == ["drums.wav", "residual.wav", "vocals.wav"]


def test_excerpt_aggregate_and_flac(separator, tmp_path):
    audio = noise(6.0, seed=1)
    sf.write(tmp_path / "in.flac", audio.T, RATE, subtype="PCM_24")
    decoded = sf.read(tmp_path / "in.flac", dtype="float32")[0].T
    result = separate_file(str(tmp_path / "in.flac"), str(tmp_path / "out"), separator, ext="flac", start=1.5,
                           duration=2.0, aggregate={"acc": ["drums", "residual"]})
    excerpt = decoded[:, int(1.5 * RATE) : int(3.5 * RATE)]
    expected = separator(excerpt[None])[0]
    got = read_stems(result, ["acc"])[0]
    assert got.shape == (2, 2 * RATE)
    np.testing.assert_allclose(got, expected[1] + expected[2], atol=2e-6 + 2 ** -23)  # 24-bit output


def test_mono_multichannel_and_other_rates(separator, tmp_path):
    mono = noise(3.0, channels=1, seed=2)
    sf.write(tmp_path / "mono.wav", mono.T, RATE, subtype="FLOAT")
    result = separate_file(str(tmp_path / "mono.wav"), str(tmp_path / "m"), separator)
    np.testing.assert_allclose(read_stems(result, separator.sources), separator(mono[None])[0], atol=1e-6)

    eight = noise(3.0, channels=8, seed=3)
    sf.write(tmp_path / "eight.wav", eight.T, RATE, subtype="FLOAT")
    result = separate_file(str(tmp_path / "eight.wav"), str(tmp_path / "e"), separator)
    assert any("downmixed 8 channels" in n for n in result.notes)
    down = np.repeat(eight.mean(axis=0, keepdims=True), 2, axis=0)
    np.testing.assert_allclose(read_stems(result, separator.sources), separator(down[None])[0], atol=1e-5)

    high = noise(3.0, seed=4, rate=22050)
    sf.write(tmp_path / "high.wav", high.T, 22050, subtype="FLOAT")
    result = separate_file(str(tmp_path / "high.wav"), str(tmp_path / "h"), separator)
    assert any("resampled 22050 -> 8000 Hz" in n for n in result.notes)
    resampled = soxr.resample(high.T, 22050, RATE).T.astype(np.float32)
    got = read_stems(result, separator.sources)
    assert got.shape[-1] == resampled.shape[-1]
    expected = separator(resampled[None])[0]
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) < 1e-3


def snr_db(reference, estimate):
    """Signal-to-noise ratio of `estimate` against `reference` in dB (over the shorter length)."""
    n = min(reference.shape[-1], estimate.shape[-1])
    reference, estimate = reference[..., :n], estimate[..., :n]
    return 10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / np.sum((reference - estimate) ** 2))


def test_mp3_input_and_output(separator, tmp_path):
    """An MP3 input is decoded as soundfile decodes it, and MP3 stems hold what the WAV stems hold
    (to the codec's loss)."""
    audio = noise(4.0, seed=5)
    sf.write(tmp_path / "in.mp3", audio.T, RATE, format="MP3")
    decoded = sf.read(tmp_path / "in.mp3", dtype="float32")[0].T
    result = separate_file(str(tmp_path / "in.mp3"), str(tmp_path / "out"), separator, ext="mp3")
    wav = separate_file(str(tmp_path / "in.mp3"), str(tmp_path / "wav"), separator)
    wav_stems = read_stems(wav, separator.sources)
    np.testing.assert_allclose(wav_stems, separator(decoded[None])[0], atol=1e-5)
    assert sf.info(result.stems["vocals"]).format == "MP3"
    for k, name in enumerate(separator.sources):
        mp3 = sf.read(result.stems[name], dtype="float32", always_2d=True)[0].T
        assert abs(mp3.shape[-1] - wav_stems.shape[-1]) < 2000
        assert snr_db(wav_stems[k], mp3) > 6, name  # noise stems at 8 kHz: a hard case for the codec
        assert snr_db(wav_stems[k], np.roll(mp3, 441, axis=-1)) < 3  # the measure tells content apart


def test_bad_inputs_name_the_file_and_leave_nothing(separator, tmp_path):
    audio = noise(4.0, seed=6)
    audio[:, 3 * RATE] = np.nan
    sf.write(tmp_path / "nan.wav", audio.T, RATE, subtype="FLOAT")
    with pytest.raises(UMXError, match=r"nan.wav: NaN or infinite samples near 2\.\d s"):
        separate_file(str(tmp_path / "nan.wav"), str(tmp_path / "out"), separator)
    assert os.listdir(tmp_path / "out") == []  # no stem, finished or partial
    sf.write(tmp_path / "short.wav", noise(0.01).T, RATE)
    with pytest.raises(UMXError, match="short.wav: 80 samples"):
        separate_file(str(tmp_path / "short.wav"), str(tmp_path / "o2"), separator)
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(UMXError, match="text.wav: not a readable audio file"):
        separate_file(str(tmp_path / "text.wav"), str(tmp_path / "o3"), separator)
    sf.write(tmp_path / "empty.wav", np.zeros((0, 2), np.float32), RATE)
    with pytest.raises(UMXError, match="empty.wav: no audio samples"):
        separate_file(str(tmp_path / "empty.wav"), str(tmp_path / "o4"), separator)
    with pytest.raises(UMXError, match="--start 9.0 s is past the end"):
        separate_file(str(tmp_path / "nan.wav"), str(tmp_path / "o5"), separator, start=9.0)
    with pytest.raises(UMXError, match="codec must be one of"):
        separate_file(str(tmp_path / "nan.wav"), str(tmp_path / "o6"), separator, ext="aiff")


def test_gcs_in_and_out(separator, tmp_path, gcs_emulator):
    audio = noise(3.0, seed=7)
    sf.write(tmp_path / "in.wav", audio.T, RATE, subtype="FLOAT")
    storage.upload_file(str(tmp_path / "in.wav"), f"gs://{gcs_emulator}/stream/in.wav")
    out = f"gs://{gcs_emulator}/stream-out/in"
    result = separate_file(f"gs://{gcs_emulator}/stream/in.wav", out, separator)
    assert result.stems["vocals"] == f"{out}/vocals.wav"
    local = tmp_path / "vocals.wav"
    local.write_bytes(storage.read_bytes(result.stems["vocals"]))
    np.testing.assert_allclose(sf.read(local, dtype="float32")[0].T, separator(audio[None])[0, 0], atol=1e-6)


def test_output_names():
    assert output_name("gs://b/a/Song One.stem.mp4") == "Song One"
    assert output_name("/x/track.01.flac") == "track.01"


def test_several_files_share_batches_and_fail_alone(separator, tmp_path):
    from umx_core.stream import separate_files

    good = [noise(3.1, seed=10), noise(2.2, seed=11), noise(1.7, channels=1, seed=12)]
    broken = noise(3.0, seed=13)
    broken[:, int(2.5 * RATE)] = np.inf  # fails after its first chunks were separated
    paths = []
    for k, audio in enumerate(good[:2] + [broken] + good[2:]):
        paths.append(str(tmp_path / f"in{k}.wav"))
        sf.write(paths[-1], audio.T, RATE, subtype="FLOAT")
    paths.append(str(tmp_path / "missing.wav"))
    outdirs = [str(tmp_path / f"out{k}") for k in range(len(paths))]
    results = separate_files(paths, outdirs, separator)
    assert [r.error is None for r in results] == [True, True, False, True, False]
    assert "in2.wav: NaN or infinite" in str(results[2].error) and results[2].error.stage == "decode"
    assert results[2].stems is None and results[2].error.path == paths[2]
    assert "no such file" in str(results[4].error) and results[4].error.stage == "decode"
    assert not os.path.exists(outdirs[2]) or os.listdir(outdirs[2]) == []
    for k, audio in zip((0, 1, 3), good):
        np.testing.assert_allclose(read_stems(results[k], separator.sources), separator(audio[None])[0], atol=1e-6)
