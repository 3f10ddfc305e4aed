"""training/losses.py: X-UMX's combination and multi-domain losses against formulas written here in numpy."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from training import losses


def test_the_combinations_are_every_set_of_one_to_n_minus_one_targets():
    assert losses.combinations(4) == [(0,), (1,), (2,), (3,), (0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3),
                                      (0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)]
    assert losses.combinations(2) == [(0,), (1,)]


def test_the_combination_loss_is_the_mean_mse_of_the_summed_sets():
    rng = np.random.default_rng(0)
    estimates, targets = (rng.standard_normal((3, 4, 5, 6, 2)).astype(np.float32) for _ in range(2))
    expected = np.mean([np.mean((estimates[:, list(ks)].sum(1) - targets[:, list(ks)].sum(1)) ** 2)
                        for size in (1, 2, 3) for ks in itertools.combinations(range(4), size)])
    assert float(losses.combination_mse(tf.constant(estimates), tf.constant(targets))) == pytest.approx(expected, rel=1e-5)


def numpy_wsdr(estimate, reference, mixture, eps=1e-10):
    def cos(a, b):
        return (a * b).sum(-1) / (np.sqrt((a * a).sum(-1) + eps) * np.sqrt((b * b).sum(-1) + eps) + eps)

    noise = mixture - reference
    share = (reference ** 2).sum(-1) / ((reference ** 2).sum(-1) + (noise ** 2).sum(-1) + eps)
    return -share * cos(reference, estimate) - (1 - share) * cos(noise, mixture - estimate)


def test_the_time_domain_loss_is_one_plus_the_mean_weighted_sdr_of_the_summed_sets():
    rng = np.random.default_rng(1)
    references = rng.standard_normal((2, 3, 2, 400)).astype(np.float32)
    mixture = references.sum(1) + 0.1 * rng.standard_normal((2, 2, 400)).astype(np.float32)
    estimates = (references + 0.3 * rng.standard_normal(references.shape)).astype(np.float32)
    rows = [numpy_wsdr(estimates[:, list(ks)].sum(1), references[:, list(ks)].sum(1), mixture)
            for ks in losses.combinations(3)]
    channels_first = lambda x: tf.constant(x.transpose(0, 2, 1, 3))  # noqa: E731
    got = float(losses.combination_wsdr(channels_first(estimates), channels_first(references), tf.constant(mixture)))
    assert got == pytest.approx(1 + np.mean(rows), rel=1e-5)
    perfect = float(losses.combination_wsdr(channels_first(references), channels_first(references),
                                            tf.constant(mixture)))
    assert perfect == pytest.approx(0.0, abs=1e-5) and got > 0.02  # worse than perfect


def test_magnitudes_with_the_mixtures_phase_give_the_audio_back():
    """The time-domain loss inverts the estimates with the mixture's phase: the true magnitudes of a
    mixture's only source give the mixture back (inside the frames' full coverage)."""
    rng = np.random.default_rng(2)
    audio = rng.standard_normal((1, 2, 4096)).astype(np.float32)
    n_fft, hop = 256, 64
    magnitude = losses.magnitudes(tf.constant(audio), n_fft, hop)[:, None]  # one target
    spectrogram = losses.stft_frames(tf.constant(audio), n_fft, hop)
    back = losses.time_signals(magnitude, spectrogram, n_fft, hop).numpy()
    np.testing.assert_allclose(back[0, :, 0], audio[0, :, n_fft:n_fft + back.shape[-1]], atol=1e-4)
