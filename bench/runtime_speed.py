"""The network's runtimes end to end: XLA, OpenVINO float32 and bfloat16 against openunmix, one run.

umxhq-size model (hidden 512, max_bin 1487, stereo, 4 targets, random weights shared by every
side), `--seconds` of stereo audio, niter 1. Each side separates the same audio `--repeats` times
after a warm-up, the sides taking turns; the table gives each one's best time, its real-time
factor, its speed against XLA float32 and against openunmix, and its stems' relative difference
from XLA float32's.

    .venv/bin/python bench/runtime_speed.py [--seconds 30] [--repeats 3] [--niter 1]
"""

import argparse

from common import RATE, THREADS, limit_threads, take_turns, umxhq_size_models


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--niter", type=int, default=1)
    args = parser.parse_args()
    limit_threads()
    import numpy as np
    import torch
    from openunmix.model import Separator as TorchSeparator

    from umx_core.pretrained import separator_from_openunmix
    from umx_core.runtime.openvino import has_bfloat16

    models = umxhq_size_models()
    weights = {k: m.state_dict() for k, m in models.items()}
    audio = (np.random.default_rng(0).standard_normal((1, 2, int(args.seconds * RATE))) * 0.1).astype(np.float32)
    reference = TorchSeparator(models, niter=args.niter).eval()
    torch_audio = torch.from_numpy(audio)

    def openunmix():
        with torch.no_grad():
            return reference(torch_audio).numpy()

    sides = {"openunmix (torch)": openunmix}
    for name, kwargs in (("XLA float32", {}), ("OpenVINO float32", {"runtime": "openvino"}),
                         ("OpenVINO bfloat16", {"runtime": "openvino", "precision": "bfloat16"})):
        separator = separator_from_openunmix(weights, niter=args.niter, **kwargs)
        sides[name] = lambda s=separator: s(audio)
    outputs, best = take_turns(sides, args.repeats)
    xla, torch_time = best["XLA float32"], best["openunmix (torch)"]
    print(f"{args.seconds:.0f} s stereo, 4 targets, umxhq size, niter {args.niter}, {THREADS} threads; "
          f"CPU bfloat16: {'yes' if has_bfloat16() else 'no'}")
    print("| runtime | time | real time | vs XLA float32 | vs openunmix | stems vs XLA float32 |")
    print("| --- | --- | --- | --- | --- | --- |")
    expected = outputs["XLA float32"]
    for name, seconds in best.items():
        difference = np.linalg.norm(outputs[name] - expected) / np.linalg.norm(expected)
        print(f"| {name} | {seconds:.2f} s | {args.seconds / seconds:.1f}x | {xla / seconds:.2f}x | "
              f"{torch_time / seconds:.2f}x | {difference:.1e} |")


if __name__ == "__main__":
    main()
