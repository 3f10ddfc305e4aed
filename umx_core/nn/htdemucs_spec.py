"""Hybrid Transformer Demucs's STFT and inverse STFT, and its complex-as-channels layout.

demucs pads the audio so that a signal of `L` samples gives exactly `ceil(L / hop)` frames with
`hop = nfft / 4`: reflect padding of `1.5 * hop` on the left and `1.5 * hop` plus the rounding on the
right, then torch.stft (centred, normalised, periodic Hann), of which it keeps the frames 2 to
`2 + ceil(L / hop)` and drops the Nyquist bin. The frames kept are the un-centred frames of the padded
signal, which is what `spectrogram` computes. Shapes: audio `(batch, channels, samples)`, spectra
`(..., frames, bins)` with `bins = nfft / 2`.
"""

import numpy as np
import tensorflow as tf


def dims(x):
    """The shape of `x` as a list: Python ints where static, scalar tensors where not.

    Args:
        x: a tensor of known rank.
    Returns:
        list with one entry per axis.
    """
    shape = tf.shape(x)
    return [size if size is not None else shape[axis] for axis, size in enumerate(x.shape)]


def pad_axis(x, axis, before, after, mode="CONSTANT"):
    """`x` padded on one axis (zeros or reflection), other axes' static sizes kept.

    Args:
        x: a tensor; `axis` may be negative.
        before, after: ints or scalar int tensors.
        mode: "CONSTANT" (zeros) or "REFLECT" (as torch's reflect, the edge sample not repeated).
    Returns:
        `x` with `before + after` more entries on `axis`.
    """
    rank = len(x.shape)
    axis %= rank
    paddings = [[0, 0]] * axis + [[before, after]] + [[0, 0]] * (rank - axis - 1)
    out = tf.pad(x, paddings, mode=mode)
    # a padding that is a tensor hides every static size from shape inference: put the others back
    return tf.ensure_shape(out, [None if k == axis else size for k, size in enumerate(x.shape)])


def reflect_pad(x, left, right):
    """demucs's `pad1d(..., mode="reflect")` on the last axis, for any length.

    Reflection needs more samples than the pad; a shorter signal first gets the missing samples as
    zeros on the right (then the left), as demucs does.

    Args:
        x: float32 `(..., samples)`.
        left, right: pad sizes (ints or scalar int tensors).
    Returns:
        float32 `(..., left + samples + right)`.
    """
    length = dims(x)[-1]
    extra = tf.maximum(tf.maximum(left, right) - length + 1, 0)
    extra_right = tf.minimum(right, extra)
    extra_left = extra - extra_right
    x = pad_axis(x, -1, extra_left, extra_right)
    return pad_axis(x, -1, left - extra_left, right - extra_right, mode="REFLECT")


def hann(nfft):
    """Periodic Hann window of `nfft` samples, as `torch.hann_window(nfft)`."""
    return tf.signal.hann_window(nfft, periodic=True, dtype=tf.float32)


def spectrogram(audio, nfft):
    """demucs's `HTDemucs._spec`: normalised STFT, `ceil(samples / hop)` frames, no Nyquist bin.

    Args:
        audio: float32 `(batch, channels, samples)`.
        nfft: FFT size, a multiple of 4; the hop is `nfft // 4`.
    Returns:
        complex64 `(batch, channels, frames, nfft // 2)`, `frames = ceil(samples / hop)`.
    """
    hop = nfft // 4
    length = dims(audio)[-1]
    frames = -(-length // hop)
    pad = hop // 2 * 3
    padded = reflect_pad(audio, pad, pad + frames * hop - length)
    spec = tf.signal.stft(padded, nfft, hop, fft_length=nfft, window_fn=lambda n, dtype: hann(n), pad_end=False)
    # normalized=True in torch.stft divides by sqrt(nfft)
    return spec[..., : nfft // 2] * (1.0 / np.sqrt(nfft)).astype(np.complex64)


def inverse_spectrogram(spec, nfft, length):
    """demucs's `HTDemucs._ispec`: the inverse of `spectrogram`, `length` samples.

    demucs adds a zero Nyquist bin and two zero frames on each side, runs torch.istft (normalised,
    centred) and keeps `length` samples from `1.5 * hop`. Zero frames add nothing to the overlap-add,
    and every kept sample lies where four windows overlap, so torch's window normalisation is the
    constant sum of four squared Hann windows at a quarter hop, 1.5.

    Args:
        spec: complex64 `(..., frames, nfft // 2)`.
        nfft: FFT size; the hop is `nfft // 4`.
        length: samples to return, at most `hop * frames` (int or scalar int tensor).
    Returns:
        float32 `(..., length)`.
    """
    hop = nfft // 4
    spec = pad_axis(spec, -1, 0, 1)  # the Nyquist bin demucs dropped, as zeros
    # normalized=True in torch.istft multiplies by sqrt(nfft); irfft ignores the imaginary parts
    # of the DC and Nyquist bins, as torch's does
    frames = tf.signal.irfft(spec, fft_length=[nfft]) * (hann(nfft) * np.float32(np.sqrt(nfft)))
    summed = tf.signal.overlap_and_add(frames, hop)
    window = np.hanning(nfft + 1)[:-1]  # periodic Hann, float64
    envelope = np.float32(np.sum(window**2) / hop)  # four overlapping squared windows: 1.5
    start = hop // 2 * 3
    return summed[..., start : start + length] / envelope


def complex_as_channels(spec):
    """demucs's complex-as-channels input: real and imaginary parts side by side per audio channel.

    Args:
        spec: complex64 `(batch, channels, frames, bins)`.
    Returns:
        float32 `(batch, frames, bins, 2 * channels)`, channel `2c` the real and `2c + 1` the
        imaginary part of audio channel `c` (demucs's channel order).
    """
    parts = tf.stack([tf.math.real(spec), tf.math.imag(spec)], axis=-1)  # (batch, channels, frames, bins, 2)
    # channels-last with each channel's real and imaginary parts adjacent
    parts = tf.transpose(parts, [0, 2, 3, 1, 4])
    batch, frames, bins, channels, _ = dims(parts)
    return tf.reshape(parts, [batch, frames, bins, 2 * channels])


def channels_as_complex(x, nb_sources):
    """The inverse of `complex_as_channels` for every source's output.

    Args:
        x: float32 `(batch, frames, bins, sources * 2 * channels)`, demucs's channel order.
        nb_sources: the number of sources.
    Returns:
        complex64 `(batch, sources, channels, frames, bins)`.
    """
    batch, frames, bins, width = dims(x)
    parts = tf.reshape(x, [batch, frames, bins, nb_sources, width // (2 * nb_sources), 2])
    # sources and channels ahead of (frames, bins), where the inverse STFT wants them
    parts = tf.transpose(parts, [0, 3, 4, 1, 2, 5])
    return tf.complex(parts[..., 0], parts[..., 1])
