"""The training losses: open-unmix's mean squared error between estimated and true target magnitudes.

Magnitudes are channels-last, `(..., frames, bins, channels)`, from an STFT without centring, as
open-unmix trains.
"""

import tensorflow as tf

from umx_core.nn.transforms import stft_frames


def magnitudes(audio, n_fft, n_hop, mono=False, spectrogram=None):
    """Channels-last magnitude of `(..., channels, samples)` audio: `(..., frames, bins, channels or 1)`.

    Args:
        mono: average the channels' magnitudes (a one-channel model).
        spectrogram: the audio's `stft_frames`, when already computed.
    """
    spec = tf.abs(stft_frames(audio, n_fft, n_hop) if spectrogram is None else spectrogram)  # (..., ch, frames, bins)
    rank = len(spec.shape)
    perm = list(range(rank - 3)) + [rank - 2, rank - 1, rank - 3]  # channels to the end
    spec = tf.transpose(spec, perm)
    return tf.reduce_mean(spec, axis=-1, keepdims=True) if mono else spec


def mse_per_target(estimates, targets):
    """Mean squared error per example and target: `(batch, targets)` from two
    `(batch, targets, frames, bins, channels)` magnitudes."""
    return tf.reduce_mean(tf.square(estimates - targets), axis=[2, 3, 4])


def combinations(count):
    """X-UMX's target sets: every target alone, then every combination of 2 to `count - 1` of them."""
    import itertools

    return [c for size in range(1, max(count, 2)) for c in itertools.combinations(range(count), size)]


def _set_matrix(count):
    """`(sets, count)` float32: row s is the indicator of `combinations(count)[s]`."""
    import numpy as np

    sets = combinations(count)
    matrix = np.zeros((len(sets), count), np.float32)
    for row, ks in enumerate(sets):
        matrix[row, list(ks)] = 1.0
    return tf.constant(matrix)


def combination_mse(estimates, targets):
    """X-UMX's combination loss: the mean over `combinations` of the MSE between the summed estimates
    and the summed targets, both `(batch, targets, frames, bins, channels)` magnitudes."""
    sets = combinations(estimates.shape[1])
    # every target is in as many sets as every other, every pair too: the sets' squared errors add
    # up to a mix of the targets' own squared errors and the squared error of their sum
    alone = sum(0 in ks for ks in sets)
    paired = sum({0, 1} <= set(ks) for ks in sets)
    errors = estimates - targets
    total = ((alone - paired) * tf.reduce_sum(tf.square(errors), axis=1)
             + paired * tf.square(tf.reduce_sum(errors, axis=1)))
    return tf.reduce_mean(total) / len(sets)


def time_signals(estimates, spectrogram, n_fft, n_hop):
    """Estimated magnitudes `(batch, targets, frames, bins, channels)` with the phase of the mixture's
    `stft_frames` `(batch, channels, frames, bins)`, back to audio `(batch, channels, targets, samples)`
    (the uncentred STFT inverted, normalised by the window envelope; the first and last `n_fft`
    samples, which fewer windows cover, are left out)."""
    from umx_core.nn.transforms import overlap_add, window_envelope

    scale = 1.0 / tf.maximum(tf.abs(spectrogram), 1e-10)
    cos, sin = (part[:, :, None] for part in (tf.math.real(spectrogram) * scale, tf.math.imag(spectrogram) * scale))
    magnitude = tf.transpose(estimates, [0, 4, 1, 2, 3])  # -> (batch, channels, targets, frames, bins)
    audio = overlap_add(tf.complex(magnitude * cos, magnitude * sin), n_fft, n_hop)
    audio = audio / tf.maximum(window_envelope(tf.shape(spectrogram)[2], n_fft, n_hop), 1e-10)
    return audio[..., n_fft:-n_fft]


def combination_wsdr(estimates, references, mixture, eps=1e-10):
    """X-UMX's time-domain loss: 1 + the mean over `combinations` of the targets and over channels of
    the weighted SDR loss (Choi et al. 2019) of the summed sets, from 0 (perfect) to 2: of estimate `e`,
    reference `r` and mixture `m`, `-(a cos(r, e) + (1 - a) cos(m - r, m - e))`, `a` the reference's
    share `|r|^2 / (|r|^2 + |m - r|^2)`. Takes `(batch, channels, targets, samples)` estimates and
    references and the `(batch, channels, samples)` mixture."""
    count = estimates.shape[2]
    # every inner product the sets need is a quadratic form of one Gram matrix per row (batch,
    # channel) over the targets' errors, the references and what of the mixture they leave out
    leftover = mixture - tf.reduce_sum(references, axis=2)
    basis = tf.concat([estimates - references, references, leftover[:, :, None]], axis=2)
    gram = tf.matmul(basis, basis, transpose_b=True)  # (batch, channels, 2 targets + 1, 2 targets + 1)
    v = _set_matrix(count)
    zero, one = tf.zeros_like(v[:, :1]), tf.ones_like(v[:, :1])
    reference = tf.concat([tf.zeros_like(v), v, zero], axis=1)
    estimate = tf.concat([v, v, zero], axis=1)
    noise = tf.concat([tf.zeros_like(v), 1.0 - v, one], axis=1)  # m - r
    noise_estimate = tf.concat([-v, 1.0 - v, one], axis=1)  # m - e

    def dot(x, y):
        return tf.einsum("si,bcij,sj->bcs", x, gram, y)

    def cosine(x, y):
        norms = tf.sqrt(tf.maximum(dot(x, x), 0.0) + eps) * tf.sqrt(tf.maximum(dot(y, y), 0.0) + eps)
        return dot(x, y) / (norms + eps)

    energy, noise_energy = tf.maximum(dot(reference, reference), 0.0), tf.maximum(dot(noise, noise), 0.0)
    share = energy / (energy + noise_energy + eps)
    wsdr = -share * cosine(reference, estimate) - (1 - share) * cosine(noise, noise_estimate)
    return 1.0 + tf.reduce_mean(wsdr)


def objective(model, mixture, stems, config, training=True):
    """`(per-target MSE (targets,), the loss trained on)` of one batch `(batch, channels, samples)`
    mixtures and `(batch, targets, channels, samples)` stems. The loss is open-unmix's (the targets'
    MSEs summed) unless the configuration asks for X-UMX's: `combination_loss` (the MSE over the
    target sets of `combinations`) and `time_loss_weight` times the time-domain `combination_wsdr`
    (the multi-domain loss; X-UMX weighs it 10)."""
    n_fft, n_hop = config["n_fft"], config["n_hop"]
    mono = config["nb_channels"] == 1
    spectrogram = stft_frames(mixture, n_fft, n_hop)
    estimates = model(magnitudes(mixture, n_fft, n_hop, mono, spectrogram), training=training)
    references = magnitudes(stems, n_fft, n_hop, mono)
    per_target = tf.reduce_mean(mse_per_target(estimates, references), axis=0)
    loss = combination_mse(estimates, references) if config.get("combination_loss") else tf.reduce_sum(per_target)
    weight = config.get("time_loss_weight") or 0.0
    if weight:
        audio = time_signals(estimates, spectrogram, n_fft, n_hop)
        span = slice(n_fft, n_fft + audio.shape[-1])
        stems = tf.transpose(stems, [0, 2, 1, 3])[..., span]  # -> (batch, channels, targets, samples)
        loss += weight * combination_wsdr(audio, stems, mixture[..., span])
    return per_target, loss
