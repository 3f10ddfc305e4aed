"""Separator speed: umx_core against openunmix with identical weights, same threads, one run.

umxhq-size model (hidden 512, max_bin 1487, stereo), 4 targets, 30 s of stereo audio,
niter 0 and 1. Prints each one's real-time factor (audio seconds per wall second) and
the ratio ours / openunmix.

    .venv/bin/python bench/separator_speed.py [--seconds 30] [--repeats 3] [--segment N] [--batch-frames N]
"""

import argparse

from common import RATE, THREADS, best_time, limit_threads, matmul_flop_rate, network_flop_per_second, umxhq_size_models


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--niter", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--segment", type=int, default=None, help="Separator segment (frames)")
    parser.add_argument("--context", type=int, default=64, help="Separator context (frames)")
    parser.add_argument("--batch-frames", type=int, default=None, help="Separator batch_frames (default: its own)")
    args = parser.parse_args()
    limit_threads()
    import numpy as np
    import torch
    from openunmix.model import Separator as TorchSeparator

    from umx_core.pretrained import separator_from_openunmix

    models = umxhq_size_models()
    audio = (np.random.default_rng(0).standard_normal((1, 2, int(args.seconds * RATE))) * 0.1).astype(np.float32)
    torch_audio = torch.from_numpy(audio)
    print(f"{args.seconds:.0f} s stereo, 4 targets, umxhq size, {THREADS} threads each; "
          "real-time factor (higher is faster)")
    rate = matmul_flop_rate()
    for niter in args.niter:
        reference = TorchSeparator(models, niter=niter).eval()
        ours = separator_from_openunmix({k: m.state_dict() for k, m in models.items()}, niter=niter,
                                        segment=args.segment, context=args.context,
                                        **({"batch_frames": args.batch_frames} if args.batch_frames else {}))

        def run_reference():
            with torch.no_grad():
                return reference(torch_audio)

        t_ref = best_time(run_reference, args.repeats)
        t_ours = best_time(lambda: ours(audio), args.repeats)
        with torch.no_grad():
            expected = reference(torch_audio).numpy()
        error = np.linalg.norm(ours(audio) - expected) / np.linalg.norm(expected)
        roofline = rate / network_flop_per_second(ours)  # real time the network allows at the matmul rate
        print(
            f"niter={niter}: openunmix {args.seconds / t_ref:5.1f}x ({t_ref:.2f} s)  "
            f"umx_core {args.seconds / t_ours:5.1f}x ({t_ours:.2f} s)  ratio {t_ref / t_ours:.2f}  "
            f"rel. difference {error:.1e}  roofline {roofline:.1f}x ({args.seconds / t_ours / roofline:.0%} of it; "
            f"matmul {rate / 1e9:.0f} GFLOP/s, network {network_flop_per_second(ours) / 1e9:.2f} GFLOP per s)"
        )


if __name__ == "__main__":
    main()
