"""Segmenting tolerance with a trained model: chunked separation against one whole-track chunk.

The bundled example songs, concatenated (30 s), separated by a shipped demo model with its
default chunks (segment 300 frames, context 64) and smaller contexts, against the same model
with the whole track as one chunk (same EM windows of 300 frames), so the only difference is
what the BLSTM sees. Prints the relative difference of the stems.

    .venv/bin/python bench/segmenting.py [--model demo-5stems]
"""

import argparse
import os

import numpy as np

from common import limit_threads

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo-5stems")
    args = parser.parse_args()
    limit_threads(("tensorflow",))
    import soundfile as sf

    from umx_core.pretrained import load_separator

    folder = os.path.join(REPO, "examples", "audio")
    audio = np.concatenate([sf.read(os.path.join(folder, f), dtype="float32", always_2d=True)[0]
                            for f in sorted(os.listdir(folder))]).T[None]
    separator = load_separator(args.model)
    frames = 1 + audio.shape[-1] // separator.n_hop
    whole = load_separator(args.model, niter=1, segment=-(-frames // 300) * 300)(audio)  # one chunk
    print(f"{args.model}: {audio.shape[-1] / 44100:.0f} s, niter 1, EM windows of 300 frames")
    for context in (64, 32, 16, 0):
        chunked = load_separator(args.model, niter=1, segment=300, context=context)(audio)
        error = np.linalg.norm(chunked - whole) / np.linalg.norm(whole)
        print(f"segment 300, context {context:2d}: relative difference {error:.2e}")


if __name__ == "__main__":
    main()
