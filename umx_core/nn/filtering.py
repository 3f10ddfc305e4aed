"""Multichannel Wiener filtering with EM refinement: the norbert algorithm in TensorFlow.

`wiener` keeps norbert's axis order, `(frames, bins, channels, sources)` for source
spectrograms and `(frames, bins, channels)` for the mixture STFT; the
`ExpectationMaximization` layer takes the model's batch-first, channels-last layout.

Inside, everything runs channels-first with bins as the minor axis and the frames split
into independent windows by a reshape: sources `(batch, sources, channels, windows,
frames, bins)`, mixture `(batch, channels, windows, frames, bins)`. With bins contiguous
every operation vectorises; tiny minor axes (2 channels, 4 sources) would not. Everything
is vectorised; the only Python loops are over EM iterations.
"""

import keras
import numpy as np
import tensorflow as tf

from umx_core.errors import UMXError

from umx_core.nn import PACKAGE


def _complex(x):
    return tf.cast(x, tf.complex64)


def _power(z):
    """|z|^2 of a complex tensor as re^2 + im^2 (tf.abs on complex is a slower, overflow-safe hypot)."""
    return tf.square(tf.math.real(z)) + tf.square(tf.math.imag(z))


def _initial_estimate(v, x, softmask, residual, eps):
    """Initial complex estimates from magnitudes and the mixture.

    Args:
        v: float32 `(B, sources, channels or 1, W, T, F)` source magnitudes.
        x: complex64 `(B, channels, W, T, F)` mixture STFT.
    Returns:
        complex64 `(B, sources [+1], channels, W, T, F)`.
    """
    x = x[:, None]
    if softmask:
        # ratio mask of every source, applied to the complex mixture
        y = _complex(v / (eps + tf.reduce_sum(v, axis=1, keepdims=True))) * x
    else:
        # source magnitudes with the mixture phase; a zero bin takes phase 0, as norbert
        power = _power(x)
        inv_mag = tf.where(power > 0, tf.math.rsqrt(tf.where(power > 0, power, 1.0)), 0.0)
        phase = tf.where(power > 0, x * _complex(inv_mag), tf.ones_like(x))
        y = _complex(v) * phase
    if residual:
        y = tf.concat([y, x - tf.reduce_sum(y, axis=1, keepdims=True)], axis=1)
    return y


def _em_step_mono(y, x, eps, reg):
    """One EM iteration for one channel: y_j = v_j R_j / (sum_k v_k R_k + sqrt(eps)) * x."""
    power = _power(y[:, :, 0])  # v_j = |y_j|^2, (B, J, W, T, F)
    frame_sum = tf.reduce_sum(power, axis=-2, keepdims=True)
    weights = power * (frame_sum / (eps + frame_sum))  # v_j R_j, with R_j = sum_t |y_j|^2 / (eps + sum_t v_j)
    gain = weights / (tf.reduce_sum(weights, axis=1, keepdims=True) + reg)
    return (_complex(gain) * x[:, None, 0])[:, :, None]


def _em_step_stereo(y, x, eps, reg):
    """One EM iteration for two channels, using that every covariance here is Hermitian.

    R_j = [[a_j, b_j], [conj(b_j), d_j]] with a_j, d_j real, and so is the mixture model
    Cxx = [[A, B], [conj(B), D]], whose determinant A*D - |B|^2 is real: norbert's
    algorithm with about half the complex arithmetic.
    """
    y0, y1 = y[:, :, 0], y[:, :, 1]  # (B, J, W, T, F)
    p0, p1 = _power(y0), _power(y1)
    v = 0.5 * (p0 + p1)  # power spectral density: mean over channels of |y|^2
    inv_weight = 1.0 / (eps + tf.reduce_sum(v, axis=-2, keepdims=True))  # (B, J, W, 1, F)
    a = tf.reduce_sum(p0, axis=-2, keepdims=True) * inv_weight  # real
    d = tf.reduce_sum(p1, axis=-2, keepdims=True) * inv_weight
    b = tf.reduce_sum(y0 * tf.math.conj(y1), axis=-2, keepdims=True) * _complex(inv_weight)
    # mixture covariance with sqrt(eps) on the diagonal, per frame and bin: (B, W, T, F)
    big_a = tf.reduce_sum(v * a, axis=1) + reg
    big_d = tf.reduce_sum(v * d, axis=1) + reg
    big_b = tf.reduce_sum(_complex(v) * b, axis=1)
    inv_det = _complex(1.0 / (big_a * big_d - _power(big_b)))
    x0, x1 = x[:, 0], x[:, 1]
    # z = Cxx^-1 x, then y_j = v_j R_j z: no per-source gain matrices
    z0 = ((_complex(big_d) * x0 - big_b * x1) * inv_det)[:, None]
    z1 = ((_complex(big_a) * x1 - tf.math.conj(big_b) * x0) * inv_det)[:, None]
    vc = _complex(v)
    out0 = vc * (_complex(a) * z0 + b * z1)
    out1 = vc * (tf.math.conj(b) * z0 + _complex(d) * z1)
    return tf.stack([out0, out1], axis=2)


def expectation_maximization(y, x, iterations=1, eps=1e-10):
    """EM refinement of complex source estimates, per window (norbert's algorithm).

    The spatial covariance of each source is estimated over the frames of its window;
    windows are independent.

    Args:
        y: complex64 `(B, sources, channels, W, T, F)` initial estimates.
        x: complex64 `(B, channels, W, T, F)` mixture STFT.
        iterations: EM iterations, >= 1.
        eps: regularisation; `sqrt(eps)` is added to the mixture covariance diagonal.
    Returns:
        complex64 `(B, sources, channels, W, T, F)`.
    """
    nb_channels = x.shape[1]
    if nb_channels not in (1, 2):
        raise UMXError(f"EM supports 1 or 2 channels, got {nb_channels}")
    step = _em_step_mono if nb_channels == 1 else _em_step_stereo
    reg = float(np.sqrt(eps))
    for _ in range(iterations):
        y = step(y, x, eps, reg)
    return y


def _split_windows(t, win_len):
    """`(..., frames, F)` -> `(..., windows, win_len, F)`, zero-padding the frames.

    Zero frames add nothing to a window's statistics, so the padding leaves the result
    for the real frames unchanged.
    """
    shape = tf.shape(t)
    frames = shape[-2]
    nb_windows = (frames + win_len - 1) // win_len
    paddings = tf.concat([tf.zeros([tf.rank(t) - 2, 2], tf.int32), [[0, nb_windows * win_len - frames], [0, 0]]], 0)
    t = tf.pad(t, paddings)
    return tf.reshape(t, tf.concat([shape[:-2], [nb_windows, win_len, shape[-1]]], axis=0))


def _merge_windows(t, frames):
    """`(..., windows, win_len, F)` -> `(..., frames, F)`: inverse of `_split_windows`."""
    shape = tf.shape(t)
    t = tf.reshape(t, tf.concat([shape[:-3], [shape[-3] * shape[-2], shape[-1]]], axis=0))
    return t[..., :frames, :]


def wiener_channels_first(v, x, iterations, softmask, residual, eps, scale_factor, wiener_win_len):
    """Wiener filtering with EM in the internal channels-first layout.

    Args:
        v: float32 `(B, sources, channels or 1, T, F)` source magnitudes.
        x: complex64 `(B, channels, T, F)` mixture STFT.
        wiener_win_len: frames per independent window, or None for all T frames.
    Returns:
        complex64 `(B, sources [+1 residual], channels, T, F)`.
    """
    frames = tf.shape(x)[-2]
    win_len = frames if wiener_win_len is None else wiener_win_len
    v, x = _split_windows(v, win_len), _split_windows(x, win_len)
    y = _initial_estimate(v, x, softmask, residual, eps)
    if iterations:
        # scale each window down by max|x|/scale_factor (at least 1) for numerical stability
        peak = tf.sqrt(tf.reduce_max(_power(x), axis=[1, 3, 4], keepdims=True))  # (B, 1, W, 1, 1)
        scale = _complex(tf.maximum(1.0, peak / scale_factor))
        y = expectation_maximization(y / scale[:, None], x / scale, iterations, eps) * scale[:, None]
    return _merge_windows(y, frames)


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
    # norbert's (T, F, C, J) -> internal (1, J, C, T, F)
    y = wiener_channels_first(
        tf.transpose(v, [3, 2, 0, 1])[None],
        tf.transpose(x, [2, 0, 1])[None],
        int(iterations),
        softmask,
        residual,
        eps,
        scale_factor,
        None if wiener_win_len is None else int(wiener_win_len),
    )
    return tf.transpose(y[0], [2, 3, 1, 0])  # (J, C, T, F) -> (T, F, C, J)


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

    def channels_first(self, spectrograms, mix_stft):
        """The layer on the internal layout: `(B, targets, C, T, F)` and `(B, C, T, F)` -> `(B, sources, C, T, F)`."""
        _check_iterations(self.iterations, spectrograms.shape[1] + int(self.residual))
        return wiener_channels_first(
            spectrograms, mix_stft, self.iterations, self.softmask, self.residual, self.eps, self.scale_factor,
            self.wiener_win_len,
        )

    def call(self, spectrograms, mix_stft):
        # (batch, targets, T, F, C) -> (batch, targets, C, T, F); (batch, T, F, C) -> (batch, C, T, F)
        """EM refinement: `(estimates, mixture STFT)` to the sources' STFTs (see the class docstring)."""
        y = self.channels_first(tf.transpose(spectrograms, [0, 1, 4, 2, 3]), tf.transpose(mix_stft, [0, 3, 1, 2]))
        return tf.transpose(y, [0, 1, 3, 4, 2])  # -> (batch, sources, T, F, C)

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
