"""Multichannel Wiener filtering with EM refinement: the norbert algorithm in TensorFlow.

Functions here keep norbert's axis order, `(frames, bins, channels, sources)` for
source spectrograms and `(frames, bins, channels)` for the mixture STFT; the
`ExpectationMaximization` layer takes the model's batch-first, channels-last layout.
Everything is vectorised over windows, frames, bins and sources; the only Python
loops are over the (one or two) channels and the EM iterations.
"""

import keras
import numpy as np
import tensorflow as tf

from umx_core.errors import UMXError

PACKAGE = "umx_core"


def _complex(x):
    return tf.cast(x, tf.complex64)


def _initial_estimate(v, x, softmask, residual, eps):
    """Initial complex estimates `(..., channels, sources)` from magnitudes and the mix.

    Args:
        v: float32 `(..., channels or 1, sources)` source magnitudes.
        x: complex64 `(..., channels)` mixture STFT.
    """
    if softmask:
        # ratio mask of every source, applied to the complex mixture
        mask = v / (eps + tf.reduce_sum(v, axis=-1, keepdims=True))
        y = _complex(mask) * x[..., None]
    else:
        # source magnitudes with the mixture phase; a zero bin takes phase 0, as norbert
        mag = tf.abs(x)
        phase = tf.where(mag > 0, x / _complex(tf.where(mag > 0, mag, 1.0)), tf.ones_like(x))
        y = _complex(v) * phase[..., None]
    if residual:
        y = tf.concat([y, (x - tf.reduce_sum(y, axis=-1))[..., None]], axis=-1)
    return y


def _invert(m, nb_channels):
    """Closed-form inverse of `nb_channels` x `nb_channels` matrices given as nested lists."""
    if nb_channels == 1:
        return [[1.0 / m[0][0]]]
    det = m[0][0] * m[1][1] - m[0][1] * m[1][0]
    inv_det = 1.0 / det
    return [[inv_det * m[1][1], -inv_det * m[0][1]], [-inv_det * m[1][0], inv_det * m[0][0]]]


def expectation_maximization(y, x, iterations=1, eps=1e-10):
    """EM refinement of complex source estimates, per window (norbert's algorithm).

    The spatial covariance of each source is estimated over all frames of a window;
    windows are independent.

    Args:
        y: complex64 `(windows, frames, bins, channels, sources)` initial estimates.
        x: complex64 `(windows, frames, bins, channels)` mixture STFT.
        iterations: EM iterations, >= 1.
        eps: regularisation; `sqrt(eps)` is added to the mixture covariance diagonal.
    Returns:
        complex64 `(windows, frames, bins, channels, sources)`.
    """
    nb_channels = x.shape[-1]
    if nb_channels not in (1, 2):
        raise UMXError(f"EM supports 1 or 2 channels, got {nb_channels}")
    channels = range(nb_channels)
    xs = [x[..., c] for c in channels]  # each (W, T, F)
    reg = _complex(tf.sqrt(tf.constant(eps, tf.float32)))
    for _ in range(iterations):
        ys = [y[..., c, :] for c in channels]  # each (W, T, F, J)
        # power spectral density: mean over channels of |y|^2
        v = tf.add_n([tf.square(tf.abs(yc)) for yc in ys]) / nb_channels  # (W, T, F, J)
        weight = eps + tf.reduce_sum(v, axis=1)  # (W, F, J)
        # spatial covariance R_j = sum_t y y^H / (eps + sum_t v), per window and bin
        cov = [
            [tf.reduce_sum(ys[c] * tf.math.conj(ys[d]), axis=1) / _complex(weight) for d in channels]
            for c in channels
        ]  # each (W, F, J)
        vc = _complex(v)
        # mixture covariance Cxx = sum_j v_j R_j + sqrt(eps) I, per frame and bin
        cxx = [
            [
                tf.reduce_sum(vc * cov[c][d][:, None], axis=-1) + (reg if c == d else 0.0)
                for d in channels
            ]
            for c in channels
        ]  # each (W, T, F)
        inv = _invert(cxx, nb_channels)
        # y_j = v_j R_j Cxx^-1 x, computed as v_j R_j (Cxx^-1 x): no 6-D gain tensor
        z = [tf.add_n([inv[c][d] * xs[d] for d in channels]) for c in channels]  # each (W, T, F)
        y = tf.stack(
            [
                vc * tf.add_n([cov[c][d][:, None] * z[d][..., None] for d in channels])
                for c in channels
            ],
            axis=-2,
        )  # (W, T, F, C, J)
    return y


def _windowed_wiener(v, x, iterations, softmask, residual, eps, scale_factor):
    """Wiener filtering of windows batched on the first axis.

    Args:
        v: float32 `(windows, frames, bins, channels or 1, sources)`.
        x: complex64 `(windows, frames, bins, channels)`.
    Returns:
        complex64 `(windows, frames, bins, channels, sources [+1 with residual])`.
    """
    y = _initial_estimate(v, x, softmask, residual, eps)
    if iterations == 0:
        return y
    # scale each window down by max|x|/scale_factor (at least 1) for numerical stability
    max_abs = tf.maximum(1.0, tf.reduce_max(tf.abs(x), axis=[1, 2, 3]) / scale_factor)
    scale = _complex(max_abs)[:, None, None, None]
    y = expectation_maximization(y / scale[..., None], x / scale, iterations, eps)
    return y * scale[..., None]


def _split_windows(t, win_len):
    """Pad axis 1 with zero frames to a multiple of `win_len` and fold it into windows.

    `(batch, frames, ...)` -> `(batch * windows, win_len, ...)`. Zero frames add nothing
    to a window's statistics, so padding leaves the result of the real frames unchanged.
    """
    shape = tf.shape(t)
    frames = shape[1]
    nb_windows = (frames + win_len - 1) // win_len
    pad = nb_windows * win_len - frames
    paddings = tf.concat([[[0, 0], [0, pad]], tf.zeros([tf.rank(t) - 2, 2], tf.int32)], axis=0)
    t = tf.pad(t, paddings)
    return tf.reshape(t, tf.concat([[shape[0] * nb_windows, win_len], shape[2:]], axis=0))


def _merge_windows(t, batch, frames):
    """Inverse of `_split_windows`: `(batch * windows, win_len, ...)` -> `(batch, frames, ...)`."""
    shape = tf.shape(t)
    t = tf.reshape(t, tf.concat([[batch, -1], shape[2:]], axis=0))
    return t[:, :frames]


def _check_iterations(iterations, nb_sources):
    if int(iterations) < 0:
        raise UMXError(f"iterations must be >= 0, got {iterations}")
    if iterations > 0 and nb_sources < 2:
        raise UMXError(
            "EM needs at least two sources: separate two or more targets, or add one with residual=True"
        )


def wiener(
    targets_spectrograms,
    mix_stft,
    iterations=1,
    softmask=False,
    residual=False,
    scale_factor=10.0,
    eps=None,
    wiener_win_len=None,
):
    """Multichannel Wiener filter with EM refinement, in norbert's axis order.

    Args:
        targets_spectrograms: float32 `(frames, bins, channels, sources)` nonnegative
            source magnitudes (channels may be 1 for a mono model).
        mix_stft: complex64 `(frames, bins, channels)` mixture STFT.
        iterations: EM iterations (0: initial estimates only).
        softmask: initial estimates by ratio mask of the mixture (True) or by the
            magnitudes with the mixture phase (False).
        residual: add a source `mix - sum(estimates)` before EM.
        scale_factor: estimates are scaled down by `max(1, max|x| / scale_factor)` during EM.
        eps: regularisation; None takes norbert's default, the machine epsilon of float32.
        wiener_win_len: frames per independent window; None for the whole input.
    Returns:
        complex64 `(frames, bins, channels, sources [+1 with residual])`.
    """
    v = tf.convert_to_tensor(targets_spectrograms, tf.float32)
    x = _complex(tf.convert_to_tensor(mix_stft))
    if len(v.shape) != 4 or len(x.shape) != 3:
        raise UMXError(
            "wiener expects spectrograms (frames, bins, channels, sources) and mix (frames, bins, channels), "
            f"got {tuple(v.shape)} and {tuple(x.shape)}"
        )
    _check_iterations(iterations, v.shape[-1] + int(residual))
    if eps is None:
        eps = float(np.finfo(np.float32).eps)
    frames = tf.shape(x)[0]
    win_len = frames if wiener_win_len is None else int(wiener_win_len)
    y = _windowed_wiener(
        _split_windows(v[None], win_len),
        _split_windows(x[None], win_len),
        int(iterations),
        softmask,
        residual,
        eps,
        scale_factor,
    )
    return _merge_windows(y, 1, frames)[0]


@keras.saving.register_keras_serializable(package=PACKAGE)
class ExpectationMaximization(keras.layers.Layer):
    """Wiener filtering with EM refinement, as a Keras layer (batch-first, channels-last).

    Args:
        iterations, softmask, residual, scale_factor: as `wiener`.
        eps: regularisation (open-unmix's Separator uses 1e-10).
        wiener_win_len: frames per independent window; None for the whole input.

    Call args:
        spectrograms: float32 `(batch, targets, frames, bins, channels or 1)` magnitudes.
        mix_stft: complex64 `(batch, frames, bins, channels)`.
    Returns:
        complex64 `(batch, sources, frames, bins, channels)`, sources = targets (+1 residual).
    """

    def __init__(
        self, iterations=1, softmask=False, residual=False, eps=1e-10, scale_factor=10.0, wiener_win_len=300, **kwargs
    ):
        super().__init__(**kwargs)
        if int(iterations) < 0:
            raise UMXError(f"iterations must be >= 0, got {iterations}")
        self.iterations = int(iterations)
        self.softmask = bool(softmask)
        self.residual = bool(residual)
        self.eps = float(eps)
        self.scale_factor = float(scale_factor)
        self.wiener_win_len = None if wiener_win_len is None else int(wiener_win_len)

    def call(self, spectrograms, mix_stft):
        _check_iterations(self.iterations, spectrograms.shape[1] + int(self.residual))
        batch, frames = tf.shape(mix_stft)[0], tf.shape(mix_stft)[1]
        # (batch, targets, frames, bins, ch) -> norbert-like (batch, frames, bins, ch, targets)
        v = tf.transpose(spectrograms, [0, 2, 3, 4, 1])
        win_len = frames if self.wiener_win_len is None else self.wiener_win_len
        y = _windowed_wiener(
            _split_windows(v, win_len),
            _split_windows(mix_stft, win_len),
            self.iterations,
            self.softmask,
            self.residual,
            self.eps,
            self.scale_factor,
        )
        y = _merge_windows(y, batch, frames)
        # (batch, frames, bins, ch, sources) -> (batch, sources, frames, bins, ch)
        return tf.transpose(y, [0, 4, 1, 2, 3])

    def get_config(self):
        return {
            **super().get_config(),
            "iterations": self.iterations,
            "softmask": self.softmask,
            "residual": self.residual,
            "eps": self.eps,
            "scale_factor": self.scale_factor,
            "wiener_win_len": self.wiener_win_len,
        }
