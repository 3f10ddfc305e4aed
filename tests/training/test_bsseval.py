"""training.bsseval against museval.evaluate (BSS Eval v4), the reference it must equal."""

import museval
import numpy as np
import pytest

from training import bsseval

RATE = 4000


def _sources(rng, nsrc=3, seconds=4, channels=2):
    """Stereo 'songs': noise through a different filter per source and channel, with a tone. Broadband,
    as music is: the delayed copies of a pure tone span two dimensions, and least squares on so
    singular a system gives whatever the rounding gives, in museval as here."""
    t = np.arange(seconds * RATE) / RATE
    out = []
    for j in range(nsrc):
        tone = np.sin(2 * np.pi * (110 * (j + 1)) * t)[:, None] * rng.uniform(0.2, 1, channels)
        noise = np.stack([np.convolve(rng.standard_normal(len(t)), rng.standard_normal(3 + 4 * j), mode="same")
                          for _ in range(channels)], axis=1)
        out.append(0.3 * tone + noise * 0.2)
    return np.stack(out).astype(np.float32)


def _assert_like_museval(ours, references, estimates):
    theirs = museval.evaluate(references, estimates, win=RATE, hop=RATE)
    assert ((theirs[0] < 60) & np.isfinite(theirs[0])).any()  # SDR: something to compare
    for name, a, b in zip(("SDR", "ISR", "SIR", "SAR"), ours, theirs):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        # above 60 dB a ratio's denominator is rounding error (a part that is exactly a filtered reference)
        exact = np.isfinite(b) & (b < 60)
        np.testing.assert_allclose(a[exact], b[exact], atol=1e-4, err_msg=name)
        assert (a[np.isfinite(b) & ~exact] > 60).all(), name


def test_equals_museval_for_several_estimates_at_once():
    rng = np.random.default_rng(0)
    references = _sources(rng)
    leaky = references * 0.8 + 0.2 * references[[1, 2, 0]]  # interference from the other sources
    noisy = references + 0.05 * rng.standard_normal(references.shape).astype(np.float32)  # artefacts
    filtered = np.stack([np.apply_along_axis(np.convolve, 0, r, [0.6, 0.3, 0.1], mode="same") for r in references])
    sets = [leaky, noisy, filtered.astype(np.float32)]
    ours = bsseval.evaluate(references, sets, RATE)
    assert len(ours) == 3
    for scores, estimates in zip(ours, sets):
        _assert_like_museval(scores, references, estimates)
    # the metrics tell the estimates apart as they should: leaky is interference, noisy artefacts
    assert np.median(ours[0][2]) < np.median(ours[1][2]) and np.median(ours[1][3]) < np.median(ours[0][3])


def test_silent_windows_and_lengths_as_museval():
    rng = np.random.default_rng(1)
    references = _sources(rng)
    references[1, RATE:2 * RATE] = 0  # a silent reference second: NaN for every source there
    estimates = references[:, : -RATE // 2] * 0.9 + 0.01  # shorter: padded with zeros
    estimates[2, 3 * RATE:] = 0  # an estimate silent in the last (padded) second
    ours = bsseval.evaluate(references, [estimates], RATE)[0]
    assert np.isnan(ours[0][:, 1]).all() and np.isnan(ours[0][:, 3]).all() and np.isfinite(ours[0][:, 0]).all()
    _assert_like_museval(ours, references, estimates)
    longer = np.concatenate([estimates, estimates[:, :RATE]], axis=1)  # longer: cut to the references
    _assert_like_museval(bsseval.evaluate(references, [longer], RATE)[0], references, longer)


def test_mono_and_hop_as_museval():
    rng = np.random.default_rng(2)
    references = _sources(rng, nsrc=2, seconds=3, channels=1)
    estimates = references[::-1] * 0.3 + references * 0.7 + 0.02 * rng.standard_normal(references.shape)
    ours = bsseval.evaluate(references, [estimates], RATE, hop=RATE // 2)[0]
    theirs = museval.evaluate(references, estimates, win=RATE, hop=RATE // 2)
    assert ours[0].shape == theirs[0].shape == (2, 5)
    for a, b in zip(ours, theirs):
        assert np.isfinite(b).all() and (b < 60).all()
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_a_perfect_estimate_has_no_distortion():
    references = _sources(np.random.default_rng(3), nsrc=2, seconds=2)
    sdr, isr, sir, sar = bsseval.evaluate(references, [references], RATE)[0]
    assert (sdr > 60).all() and (isr > 60).all()
    with pytest.raises(ValueError):
        bsseval.evaluate(references, [references[:1]], RATE)
