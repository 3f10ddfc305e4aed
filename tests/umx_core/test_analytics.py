"""umx_core/analytics.py: BS.1770 loudness and true peak against pyloudnorm and EBU Tech 3341, audibility."""

import numpy as np
import pyloudnorm
import pytest
from scipy import signal

from umx_core.analytics import Meter, db, describe, segments

RATE = 48000


def sine(frequency, dbfs, seconds, rate=RATE, phase=0.0, channels=2, fade=0.0):
    """A sine of peak level `dbfs` per channel, with linear fades of `fade` seconds."""
    t = np.arange(int(round(seconds * rate))) / rate
    x = 10 ** (dbfs / 20) * np.sin(2 * np.pi * frequency * t + np.deg2rad(phase))
    if fade:
        n = int(fade * rate)
        ramp = np.linspace(0.0, 1.0, n)
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return np.tile(x, (channels, 1))


def measured(audio, rate=RATE, block=4410):
    """A Meter fed `audio` in blocks of `block` samples (any size: the stream decides)."""
    meter = Meter(rate, audio.shape[0])
    for start in range(0, audio.shape[-1], block):
        meter.feed(audio[:, start:start + block])
    return meter


def rendered_song(folder, rate, seconds=20.0):
    """A song the numpy renderer makes (voice, drums, bass, other), its stems summed: `(2, samples)`."""
    import glob

    import soundfile as sf

    from training.synthesize import synthesize

    synthesize(str(folder), tracks=1, duration=seconds, rate=rate, seed=0, valid_fraction=0.0)
    stems = [sf.read(path, always_2d=True)[0].T for path in sorted(glob.glob(f"{folder}/train/*/*.wav"))]
    assert len(stems) == 4
    return np.sum(stems, axis=0)


@pytest.mark.parametrize("rate", [44100, 48000, 22050])
def test_integrated_loudness_equals_pyloudnorm(rate, tmp_path):
    """To 0.1 LU on music and on noise (pyloudnorm's K-weighting is the RBJ approximation of
    BS.1770's, about 0.04 LU apart), at every rate; the blocks fed change nothing."""
    rng = np.random.default_rng(1)
    cases = {"song": rendered_song(tmp_path, rate), "noise": rng.standard_normal((2, rate * 15)) * 0.05,
             "quiet then loud": np.concatenate([rng.standard_normal((2, rate * 5)) * 0.001,
                                                rng.standard_normal((2, rate * 10)) * 0.2], axis=1)}
    for name, audio in cases.items():
        reference = pyloudnorm.Meter(rate).integrated_loudness(audio.T)
        ours = measured(audio, rate).integrated_loudness()
        assert abs(ours - reference) < 0.1, (name, ours, reference)
        assert measured(audio, rate, block=audio.shape[-1]).integrated_loudness() == pytest.approx(ours, abs=1e-9)


@pytest.mark.parametrize("case,parts,expected", [
    (1, [(-23.0, 20)], -23.0),
    (2, [(-33.0, 20)], -33.0),
    (3, [(-36.0, 10), (-23.0, 60), (-36.0, 10)], -23.0),
    (4, [(-72.0, 10), (-36.0, 10), (-23.0, 60), (-36.0, 10), (-72.0, 10)], -23.0),
    (5, [(-26.0, 20), (-20.0, 20.1), (-26.0, 20)], -23.0),
])
def test_tech_3341_integrated_loudness_cases(case, parts, expected):
    """EBU Tech 3341's stereo 1 kHz cases (signals generated here): within its 0.1 LU."""
    audio = np.concatenate([sine(1000, level, seconds) for level, seconds in parts], axis=1)
    assert measured(audio).integrated_loudness() == pytest.approx(expected, abs=0.1)


@pytest.mark.parametrize("case,frequency,amplitude,phase,expected", [
    (15, RATE / 4, 0.50, 0.0, -6.0), (16, RATE / 4, 0.50, 45.0, -6.0), (17, RATE / 6, 0.50, 60.0, -6.0),
    (18, RATE / 8, 0.50, 67.5, -6.0), (19, RATE / 4, 1.41, 45.0, 3.0)])
def test_tech_3341_true_peak_cases(case, frequency, amplitude, phase, expected):
    """Tech 3341's true-peak sines (10 ms fades), within its +0.2 / -0.4 dB."""
    audio = sine(frequency, 20 * np.log10(amplitude), 3.0, phase=phase, fade=0.01)
    summary = measured(audio).summary()
    assert expected - 0.4 <= summary["true_peak_dbtp"] <= expected + 0.2


def test_the_true_peak_reads_the_crest_between_the_samples():
    """A sine at fs/4 with a 45 degree phase: every sample sits at +-sin(45) = 0.707 of the amplitude,
    the crest halfway between two, so the true peak is 20 log10(sqrt 2) = 3.01 dB over the sample peak."""
    amplitude = 0.5
    summary = measured(sine(RATE / 4, db(amplitude), 1.0, phase=45.0)).summary()
    assert summary["sample_peak_dbfs"] == pytest.approx(db(amplitude * np.sin(np.pi / 4)), abs=1e-3)  # as made
    over = summary["true_peak_dbtp"] - summary["sample_peak_dbfs"]
    # Tech 3341's +0.2 / -0.4 dB, as above: BS.1770's 4x filter reads this crest 0.08 dB high (its gain
    # near fs/4 is over 1), and a 4x oversampling may under-read a crest that falls between its phases
    assert db(np.sqrt(2)) - 0.4 <= over <= db(np.sqrt(2)) + 0.2, over


@pytest.mark.parametrize("offset", [0, 1, 2, 3])
def test_tech_3341_burst_cases_20_to_23(offset):
    """An fs/6 sine at 0.5 holding one period of an fs/4 sine at 1.0, made at 4 fs, low-passed and
    taken down to fs at each of the four offsets: the true peak reads the 4 fs signal's peak."""
    fast = 4 * RATE
    t = np.arange(fast) / fast
    x = 0.5 * np.sin(2 * np.pi * RATE / 6 * t)
    start, period = fast // 2, 16  # one period of fs/4 at 4 fs: 16 samples, starting at a zero of the base
    start -= start % 24
    x[start:start + period] = np.sin(2 * np.pi * np.arange(period) / period)
    lowpass = signal.firwin(255, 0.9 / 4)
    band_limited = signal.filtfilt(lowpass, [1.0], x)
    peak = db(np.max(np.abs(band_limited)))
    audio = np.tile(band_limited[offset::4], (2, 1))
    assert abs(peak) < 0.5  # the burst is the crest, near full scale
    got = measured(audio).summary()["true_peak_dbtp"]
    assert peak - 0.4 <= got <= peak + 0.2, (got, peak)


def test_silence_and_short_signals_have_no_loudness_rather_than_minus_infinity():
    silent = measured(np.zeros((2, RATE * 2))).summary()
    assert silent == {"loudness_lufs": None, "sample_peak_dbfs": None, "true_peak_dbtp": None, "energy": 0.0}
    short = measured(sine(1000, -20, 0.3)).summary()  # under one 400 ms block
    assert short["loudness_lufs"] is None and short["sample_peak_dbfs"] == pytest.approx(-20, abs=0.01)


def test_audibility_shares_and_vocal_segments():
    """A vocals stem that sounds from 2 s to 6 s and from 6.3 s to 6.6 s of a 10 s mixture: one
    segment (the 0.3 s gap bridged), audible share about 4.6 / 10, and an instrumental track when
    the vocals are silent."""
    rng = np.random.default_rng(2)
    band = rng.standard_normal((2, RATE * 10)) * 0.05
    vocals = np.zeros((2, RATE * 10))
    vocals[:, 2 * RATE:6 * RATE] = rng.standard_normal((2, 4 * RATE)) * 0.1
    vocals[:, int(6.3 * RATE):int(6.6 * RATE)] = rng.standard_normal((2, int(0.3 * RATE))) * 0.1
    out = describe({"vocals": measured(vocals), "band": measured(band)}, measured(vocals + band))
    stats = out["stems"]["vocals"]
    assert out["instrumental"] is False and len(out["vocal_segments"]) == 1
    (start, end), = out["vocal_segments"]
    assert 1.6 <= start <= 2.0 and 6.6 <= end <= 7.0
    assert 0.42 <= stats["audible_share"] <= 0.55 and 1.6 <= stats["first_audible_seconds"] <= 2.0
    assert stats["energy_share"] == pytest.approx(np.sum(vocals ** 2) / np.sum((vocals + band) ** 2), abs=1e-4)
    assert out["stems"]["band"]["audible_share"] == 1.0
    quiet = describe({"vocals": measured(np.zeros_like(band)), "band": measured(band)}, measured(band))
    assert quiet["instrumental"] is True and quiet["vocal_segments"] == []
    assert quiet["stems"]["vocals"]["loudness_lufs"] is None and quiet["stems"]["vocals"]["first_audible_seconds"] is None


def test_segments_merge_gaps_and_drop_short_runs():
    audible = np.zeros(100, bool)
    audible[[10, 11, 12, 16, 17, 40]] = True  # blocks of 400 ms every 100 ms
    assert segments(audible, min_seconds=1.0, gap_seconds=0.5) == [[1.0, 2.1]]
    assert segments(audible, min_seconds=0.0, gap_seconds=0.0) == [[1.0, 2.1], [4.0, 4.4]]  # touching: one


@pytest.mark.parametrize("seed", range(4))
def test_the_true_peak_search_passes_over_spans_yet_finds_the_filters_maximum(seed):
    """Fed in blocks of odd sizes (some shorter than the filter), with one crest in a quiet stretch:
    the true peak equals the whole signal's 4x interpolation filtered at once (scipy's upfirdn with
    the Recommendation's 48 taps), though the search filters only the spans that could hold it."""
    from umx_core.analytics import TRUE_PEAK_PHASES

    rng = np.random.default_rng(seed)
    audio = (rng.standard_normal((2, 30000)) * np.linspace(0.05, 0.3, 30000)).astype(np.float32)
    at = int(rng.integers(100, 29000))
    audio[seed % 2, at : at + 2] = [0.9, -0.8]  # a crest between two samples, where the envelope is low
    meter, start = Meter(44100, 2), 0
    for size in rng.integers(1, 5000, 40):
        meter.feed(audio[:, start : start + size])
        start += size
    meter.feed(audio[:, start:])
    taps = TRUE_PEAK_PHASES.T.reshape(-1)  # the four phases interleaved: the 48-tap interpolation filter
    expected = max(np.abs(signal.upfirdn(taps, channel.astype(np.float64), up=4)).max() for channel in audio)
    assert meter.true_peak == pytest.approx(expected, rel=1e-5)
