"""STFT / ISTFT Keras layers and the magnitude, numerically equal to torch.stft/istft.

Public audio is `(batch, channels, samples)`; spectrograms are channels-last
`(batch, frames, bins, channels)`, complex64 for STFTs, float32 for magnitudes.
"""

import keras
import tensorflow as tf

from umx_core.settings import N_FFT, N_HOP


def hann_window(n_fft):
    """Periodic Hann window of length `n_fft`, as `torch.hann_window(n_fft)`."""
    return tf.signal.hann_window(n_fft, periodic=True, dtype=tf.float32)


def frame_count(nb_samples, n_fft=N_FFT, n_hop=N_HOP, center=True):
    """Number of STFT frames torch.stft gives for `nb_samples` samples."""
    if center:
        return 1 + nb_samples // n_hop
    return 1 + (nb_samples - n_fft) // n_hop


def stft_frames(padded, n_fft, n_hop):
    """STFT of already padded audio, no further padding.

    Args:
        padded: float32 `(..., samples)`.
    Returns:
        complex64 `(..., frames, bins)` with `bins = n_fft // 2 + 1`.
    """
    return tf.signal.stft(
        padded,
        frame_length=n_fft,
        frame_step=n_hop,
        fft_length=n_fft,
        window_fn=lambda n, dtype: hann_window(n),
        pad_end=False,
    )


def overlap_add(spec, n_fft, n_hop):
    """Windowed inverse FFT of every frame, overlap-added, not normalised.

    Args:
        spec: complex64 `(..., frames, bins)`.
    Returns:
        float32 `(..., n_fft + n_hop * (frames - 1))`: the sum of the synthesis-windowed
        frames; divide by `window_envelope` to invert the STFT.
    """
    frames = tf.signal.irfft(spec, fft_length=[n_fft]) * hann_window(n_fft)
    return tf.signal.overlap_and_add(frames, n_hop)


def window_envelope(nb_frames, n_fft, n_hop):
    """Sum of squared windows over `nb_frames` frames, the ISTFT normaliser (torch's)."""
    square = tf.square(hann_window(n_fft))
    return tf.signal.overlap_and_add(tf.tile(square[None, :], [nb_frames, 1]), n_hop)


class STFTLayer(keras.layers.Layer):
    """Multichannel STFT as torch.stft (periodic Hann, onesided, unnormalised).

    `center=True` reflect-pads `n_fft // 2` samples on both sides (inference);
    `center=False` frames the signal as it is (training excerpts).

    Call args:
        audio: float32 `(batch, channels, samples)`.
    Returns:
        complex64 `(batch, frames, bins, channels)`.
    """

    def __init__(self, n_fft=N_FFT, n_hop=N_HOP, center=True, **kwargs):
        super().__init__(**kwargs)
        self.n_fft = int(n_fft)
        self.n_hop = int(n_hop)
        self.center = bool(center)

    def call(self, audio):
        """Apply the transform (see the class docstring for shapes)."""
        audio = tf.convert_to_tensor(audio, tf.float32)
        if self.center:
            pad = self.n_fft // 2
            # reflect padding needs more samples than the pad on each side, as in torch
            tf.debugging.assert_greater(
                tf.shape(audio)[-1], pad, message=f"audio shorter than n_fft/2 = {pad} samples"
            )
            audio = tf.pad(audio, [[0, 0], [0, 0], [pad, pad]], mode="REFLECT")
        spec = stft_frames(audio, self.n_fft, self.n_hop)  # (batch, channels, frames, bins)
        return tf.transpose(spec, [0, 2, 3, 1])  # -> channels-last (batch, frames, bins, channels)

    def compute_output_shape(self, input_shape):
        """`(batch, channels, frames, n_fft // 2 + 1)` for `(batch, channels, samples)`."""
        return (input_shape[0], None, self.n_fft // 2 + 1, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "n_fft": self.n_fft, "n_hop": self.n_hop, "center": self.center}


class ISTFTLayer(keras.layers.Layer):
    """Inverse of `STFTLayer`, as torch.istft with the same window and `length`.

    Call args:
        spec: complex64 `(..., frames, bins, channels)`; any leading axes (batch, targets).
        length: output length in samples (int or scalar tensor), or None for the
            natural length `n_hop * (frames - 1)` (`center=True`).
    Returns:
        float32 `(..., channels, length)`.
    """

    def __init__(self, n_fft=N_FFT, n_hop=N_HOP, center=True, **kwargs):
        super().__init__(**kwargs)
        self.n_fft = int(n_fft)
        self.n_hop = int(n_hop)
        self.center = bool(center)

    def call(self, spec, length=None):
        """Apply the transform (see the class docstring for shapes)."""
        rank = len(spec.shape)
        # (..., frames, bins, channels) -> (..., channels, frames, bins) for the FFT
        perm = list(range(rank - 3)) + [rank - 1, rank - 3, rank - 2]
        spec = tf.transpose(spec, perm)
        nb_frames = tf.shape(spec)[-2]
        signal = overlap_add(spec, self.n_fft, self.n_hop)
        envelope = window_envelope(nb_frames, self.n_fft, self.n_hop)
        # torch refuses envelopes below 1e-11; only center=False edges get there
        safe = envelope > 1e-11
        signal = tf.where(safe, signal / tf.where(safe, envelope, 1.0), 0.0)
        start = self.n_fft // 2 if self.center else 0
        if length is None:
            natural = tf.shape(signal)[-1] - 2 * start
            length = natural
        signal = signal[..., start:]
        missing = tf.maximum(length - tf.shape(signal)[-1], 0)
        pads = [[0, 0]] * (rank - 2) + [[0, missing]]
        signal = tf.pad(signal, pads)
        return signal[..., :length]

    def get_config(self):
        return {**super().get_config(), "n_fft": self.n_fft, "n_hop": self.n_hop, "center": self.center}


class ComplexNorm(keras.layers.Layer):
    """Magnitude of a complex spectrogram, as open-unmix's ComplexNorm.

    With `mono=True` the magnitudes are averaged over channels (energy-preserving
    downmix in the magnitude domain), keeping a channel axis of size 1.

    Call args:
        spec: complex64 `(batch, frames, bins, channels)`, or its magnitudes (then only
            the mono downmix applies).
    Returns:
        float32 `(batch, frames, bins, channels or 1)`.
    """

    def __init__(self, mono=False, **kwargs):
        super().__init__(**kwargs)
        self.mono = bool(mono)

    def call(self, spec):
        """Apply the transform (see the class docstring for shapes)."""
        mag = tf.abs(spec)
        if self.mono:
            mag = tf.reduce_mean(mag, axis=-1, keepdims=True)
        return mag

    def get_config(self):
        return {**super().get_config(), "mono": self.mono}
