"""The README's Python API example: load the shipped demo model, separate a bundled song.

`demo-5stems` is small and trained on synthetic General MIDI songs only (see README), which is
what the bundled songs are too; for real music load `umxhq` (downloaded once) instead.
"""

import os
import sys
import time

import soundfile as sf

import umx_core
from umx_core import load_separator, separate_file

HERE = os.path.dirname(os.path.abspath(__file__))


def main(outdir="example_output/api"):
    separator = load_separator("demo-5stems", niter=1, residual=True)
    mixture, rate = sf.read(os.path.join(HERE, "audio", "song1.flac"), dtype="float32", always_2d=True)
    start = time.time()
    estimates = separator(mixture.T[None])  # (batch, sources, channels, samples), in memory
    stems = separator.to_dict(estimates, aggregate_dict={"vocals": ["vocals"],
                                                         "accompaniment": ["bass", "drums", "guitar", "other",
                                                                           "residual"]})
    os.makedirs(outdir, exist_ok=True)
    for name, audio in stems.items():
        sf.write(os.path.join(outdir, f"{name}.wav"), audio[0].T, rate)
    print(f"umx_core {umx_core.__version__}: song1.flac ({mixture.shape[0] / rate:.0f} s) "
          f"in {time.time() - start:.1f} s "
          f"-> {outdir}/{{{','.join(stems)}}}.wav")
    # the same, streamed file to file (any length in bounded memory), every source its own stem
    result = separate_file(os.path.join(HERE, "audio", "song2.mp3"), os.path.join(outdir, "song2"), separator)
    print(f"song2.mp3: {result.duration:.0f} s in {result.seconds:.1f} s -> {sorted(result.stems.values())}")


if __name__ == "__main__":
    main(*sys.argv[1:])
