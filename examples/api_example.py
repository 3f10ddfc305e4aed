"""The README's Python API example: build a Separator, separate a mixture, write the stems.

The model here has random weights (trained demo models arrive with the training issue),
so the stems are not musically meaningful; what this shows is the API and the shapes. With a
residual the stems add up to the mixture: exactly at niter=0, and up to what EM's
regularisation removes where every estimate is near zero at niter>=1 (as in norbert).
"""

import os
import sys
import time

import numpy as np
import soundfile as sf

import umx_core
from umx_core import BLSTMSpectralFilterLayer, Separator


def main(outdir="example_output"):
    rate = 44100
    t = np.arange(8 * rate) / rate
    # a toy mixture: a 220 Hz tone on the left, noise bursts on the right
    mixture = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.1 * np.random.default_rng(0).standard_normal(t.size)])
    targets = ["vocals", "drums", "bass", "other"]
    filters = {name: BLSTMSpectralFilterLayer(nb_bins=2049, nb_channels=2, hidden_size=64, name=name) for name in targets}
    separator = Separator(filters, niter=1, residual=True, sample_rate=rate)
    start = time.time()
    estimates = separator(mixture[None].astype(np.float32))  # (batch, sources, channels, samples)
    elapsed = time.time() - start
    stems = separator.to_dict(estimates, aggregate_dict={"vocals": ["vocals"],
                                                         "accompaniment": ["drums", "bass", "other", "residual"]})
    os.makedirs(outdir, exist_ok=True)
    for name, audio in stems.items():
        sf.write(os.path.join(outdir, f"{name}.wav"), audio[0].T, rate)
    residue = sum(stems.values())[0] - mixture
    snr = 10 * np.log10(np.sum(mixture**2) / np.sum(residue**2))
    print(f"umx_core {umx_core.__version__}: separated {t.size / rate:.0f} s in {elapsed:.1f} s (XLA compilation "
          f"included) into {sorted(stems)}; sum of stems vs mixture: {snr:.0f} dB SNR; wrote {outdir}/*.wav")


if __name__ == "__main__":
    main(*sys.argv[1:])
