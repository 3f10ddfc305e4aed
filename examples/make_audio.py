"""Rebuild the bundled example audio (examples/audio/): three short songs, mixtures only.

Rendered like the demo models' data (`training.render`: the Debian packages `make system-deps`
installs) from a seed the training and test data never use, so the demo models have not heard
them. Stored as FLAC, MP3 and Ogg to exercise the decoders.

    .venv/bin/python examples/make_audio.py
"""

import os

import numpy as np
import soundfile as sf

from training.render import render_track

SEED = 7001  # the demo datasets use 2026
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "audio")
SONGS = (("song1.flac", {"format": "FLAC", "subtype": "PCM_16"}), ("song2.mp3", {"format": "MP3"}),
         ("song3.ogg", {"format": "OGG", "subtype": "VORBIS"}))


def main():
    os.makedirs(OUT, exist_ok=True)
    for index, (name, options) in enumerate(SONGS):
        parts = render_track(SEED, index, 10.0, 44100)
        mixture = np.clip(sum(parts.values()), -1, 1)
        sf.write(os.path.join(OUT, name), mixture, 44100, **options)
        print(f"wrote {os.path.join(OUT, name)}")


if __name__ == "__main__":
    main()
