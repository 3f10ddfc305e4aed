"""The training losses: open-unmix's mean squared error between estimated and true target magnitudes.

Magnitudes are channels-last, `(..., frames, bins, channels)`, from an STFT without centring, as
open-unmix trains.
"""

import tensorflow as tf

from umx_core.nn.transforms import stft_frames


def magnitudes(audio, n_fft, n_hop, mono=False):
    """Channels-last magnitude of `(..., channels, samples)` audio: `(..., frames, bins, channels or 1)`.

    Args:
        mono: average the channels' magnitudes (a one-channel model).
    """
    spec = tf.abs(stft_frames(audio, n_fft, n_hop))  # (..., ch, frames, bins)
    rank = len(spec.shape)
    perm = list(range(rank - 3)) + [rank - 2, rank - 1, rank - 3]  # channels to the end
    spec = tf.transpose(spec, perm)
    return tf.reduce_mean(spec, axis=-1, keepdims=True) if mono else spec


def mse_per_target(estimates, targets):
    """Mean squared error per example and target: `(batch, targets)` from two
    `(batch, targets, frames, bins, channels)` magnitudes."""
    return tf.reduce_mean(tf.square(estimates - targets), axis=[2, 3, 4])
