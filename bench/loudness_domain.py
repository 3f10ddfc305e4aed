"""What the stems' loudness would read if it were computed from spectra instead of samples.

For each bundled example song, the demo model's stems and the mixture: the integrated loudness
of the written stems (`umx_core.analytics.Meter`, equal to pyloudnorm), and the same loudness from
K-weighted STFT frames: the K-weighting's magnitude response applied to each frame's spectrum
(Parseval: the frame's windowed energy), each frame's energy spread over its samples by the
squared window and divided by the windows' envelope, then BS.1770's 100 ms steps, 400 ms blocks
and gates. Once from the spectra EM gives (what the compiled program holds, before the inverse
STFT) and once from the STFT of the stems as written. Prints the differences in LU.

    .venv/bin/python bench/loudness_domain.py [--model demo-5stems]
"""

import argparse
import glob
import os

import numpy as np

from common import limit_threads

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def frame_power(spectra, response, n_fft, n_hop, samples):
    """Mean-square K-weighted power per sample (summed over channels) from one-sided STFT frames
    `(frames, bins, channels)` (frame k starting at sample k * n_hop - n_fft // 2)."""
    weights = np.full(spectra.shape[1], 2.0)
    weights[0] = weights[-1] = 1.0  # DC and Nyquist appear once in a one-sided spectrum
    energy = np.einsum("fbc,b->f", np.abs(spectra) ** 2, weights * response) / n_fft
    window = np.hanning(n_fft + 1)[:-1] ** 2
    length = n_fft + n_hop * (len(energy) - 1)
    spread, envelope = np.zeros(length), np.zeros(length)
    for k, value in enumerate(energy):
        spread[k * n_hop : k * n_hop + n_fft] += value / window.sum() * window
        envelope[k * n_hop : k * n_hop + n_fft] += window
    return (spread / np.maximum(envelope, 1e-12))[n_fft // 2 : n_fft // 2 + samples]


def gated_loudness(power, rate):
    """BS.1770 integrated loudness of a per-sample power, as `Meter` gates it."""
    from umx_core.analytics import ABSOLUTE_GATE, BLOCK_STEPS, OFFSET, RELATIVE_GATE, STEP_SECONDS, lufs

    ends = [(s + 1) * rate // 10 for s in range(len(power) * 10 // rate) if (s + 1) * rate // 10 <= len(power)]
    total = np.concatenate([[0.0], np.cumsum(power)])
    steps = np.array([total[e] - total[s] for s, e in zip([0, *ends[:-1]], ends)])
    blocks = np.convolve(steps, np.ones(BLOCK_STEPS), mode="valid") / (BLOCK_STEPS * STEP_SECONDS * rate)
    blocks = blocks[blocks > 10 ** ((ABSOLUTE_GATE - OFFSET) / 10)]
    kept = blocks[blocks > np.mean(blocks) * 10 ** (RELATIVE_GATE / 10)]
    return lufs(float(np.mean(kept)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo-5stems")
    args = parser.parse_args()
    limit_threads(("tensorflow",))
    import soundfile as sf
    import tensorflow as tf
    from scipy import signal

    from umx_core import load_separator
    from umx_core.analytics import Meter, k_weighting

    model = load_separator(args.model).model
    print(f"{args.model}; differences from the written stems' loudness in LU")
    print("| song | stem | loudness (LUFS) | from EM's spectra | from the stems' own STFT |")
    print("| --- | --- | --- | --- | --- |")
    for path in sorted(glob.glob(os.path.join(REPO, "examples", "audio", "*"))):
        mix, rate = sf.read(path, dtype="float32", always_2d=True)
        audio = tf.constant(mix.T[None])
        mix_stft = model.stft(audio)  # (1, frames, bins, channels)
        spectra = model.em(model.joint(model.norm(mix_stft)), mix_stft)  # (1, sources, frames, bins, channels)
        stems = model.istft(spectra, length=audio.shape[-1]).numpy()[0]
        _, response = signal.sosfreqz(k_weighting(rate), worN=np.arange(model.n_fft // 2 + 1) * rate / model.n_fft,
                                      fs=rate)
        response = np.abs(response) ** 2
        for k, name in enumerate([*model.sources, "mixture"]):
            samples, held = (mix.T, mix_stft.numpy()[0]) if name == "mixture" else (stems[k], spectra.numpy()[0, k])
            meter = Meter(rate, samples.shape[0])
            meter.feed(samples)
            reference = meter.integrated_loudness()
            own = model.stft(tf.constant(samples[None])).numpy()[0]
            held_lu, own_lu = (gated_loudness(frame_power(s, response, model.n_fft, model.n_hop, samples.shape[1]),
                                              rate) - reference for s in (held, own))
            print(f"| {os.path.basename(path)} | {name} | {reference:.2f} | {held_lu:+.3f} | {own_lu:+.3f} |")


if __name__ == "__main__":
    main()
