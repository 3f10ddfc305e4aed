"""CPU cost of the audio around the network, per audio hour: what a GPU worker's CPUs must do.

With a GPU the network is cheap and decoding, resampling and encoding become the limit. This
measures, with the project's own audio module, the CPU seconds (process time: the measure least
disturbed by other work on a shared machine; wall seconds beside it) that one hour of stereo audio
costs for: decoding a FLAC and an MP3 input, resampling 48 kHz to 44.1 kHz (soxr), and encoding
the stems of a 5-stem model as 24-bit FLAC. It scales a few minutes of generated audio to an hour.

    .venv/bin/python bench/io_cost.py [--minutes 3]
"""

import argparse
import os
import tempfile
import time

import numpy as np
import soundfile as sf

from common import RATE  # noqa: F401  (sets up the path to the project)


def measure(fn):
    """(CPU seconds, wall seconds) of `fn()`."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="audio generated and processed per step")
    parser.add_argument("--stems", type=int, default=5)
    args = parser.parse_args()
    from umx_core import audio

    rng = np.random.default_rng(0)
    seconds = args.minutes * 60
    # music-like test signal: a few decaying partials and noise, so codecs work as on real audio
    t = np.arange(int(seconds * 48000)) / 48000
    signal = sum(np.sin(2 * np.pi * f * t) * 0.1 for f in (110, 220, 331, 440, 660))
    signal = signal * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t)) + rng.standard_normal(t.size) * 0.02
    stereo48 = np.stack([signal, np.roll(signal, 100)], axis=1).astype(np.float32)
    scale = 3600.0 / seconds
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        flac, mp3 = os.path.join(tmp, "in.flac"), os.path.join(tmp, "in.mp3")
        stereo44 = stereo48[: int(seconds * 44100)]
        sf.write(flac, stereo44, 44100, subtype="PCM_16")
        sf.write(mp3, stereo44, 44100, format="MP3")
        src48 = os.path.join(tmp, "in48.wav")
        sf.write(src48, stereo48, 48000, subtype="FLOAT")

        def decode(path, rate):
            def run():
                with audio.open_input(path, rate, tmpdir=tmp) as reader:
                    for lo in range(0, reader.samples, 1 << 18):
                        reader.read(lo, min(lo + (1 << 18), reader.samples))
            return run

        rows.append(("decode FLAC (16 bit, 44.1 kHz)", *measure(decode(flac, 44100))))
        rows.append(("decode MP3 (44.1 kHz; decoded to a float WAV first)", *measure(decode(mp3, 44100))))
        rows.append(("decode WAV 48 kHz + resample to 44.1 kHz (soxr)", *measure(decode(src48, 44100))))

        def encode():
            names = [f"stem{k}" for k in range(args.stems)]
            writers = audio.StemWriters(os.path.join(tmp, "out"), names, "flac", 44100, 2)
            for lo in range(0, len(stereo44), 1 << 18):
                block = stereo44[lo : lo + (1 << 18)].T
                writers.write({name: block for name in names})
            writers.commit()

        rows.append((f"encode {args.stems} stems, FLAC 24 bit", *measure(encode)))
    print(f"CPU seconds per audio hour (process time; wall in brackets), from {args.minutes:g} min of stereo:")
    total = 0.0
    for name, cpu, wall in rows:
        print(f"  {name:<55} {cpu * scale:7.1f} s  ({wall * scale:7.1f} s)")
        total += cpu * scale if "MP3" not in name and "resample" not in name else 0.0
    print(f"  FLAC in, {args.stems} FLAC stems out: {total:.1f} CPU s per audio hour "
          f"-> one vCPU keeps up with {3600.0 / max(total, 1e-9):.0f}x real time")


if __name__ == "__main__":
    main()
