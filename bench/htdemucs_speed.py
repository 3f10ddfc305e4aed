"""Hybrid Transformer Demucs against demucs (PyTorch), one run: `htdemucs`'s shape, random weights.

demucs 4.1.0's `apply_model(split=True, overlap=0.25, shifts=0)` and our `Separator` (shifts 0) on
the same `--seconds` of stereo, each side on `THREADS` threads, separating the same audio
`--repeats` times after a warm-up, the sides taking turns. The table gives each side's best time,
its real-time factor, its speed against demucs, and its stems' SNR against demucs's.

    .venv/bin/python bench/htdemucs_speed.py [--seconds 30] [--repeats 2] [--runtimes xla]

`--openvino` instead times the network alone (encoders, transformer, decoders: what another runtime
could run, STFT and inverse STFT left out) on one segment, XLA against OpenVINO converted from the
same TensorFlow function, float32 and bfloat16, with each output's largest difference from XLA's
relative to its largest value.
"""

import argparse
from fractions import Fraction

from common import RATE, THREADS, limit_threads, take_turns

SOURCES = ["drums", "bass", "other", "vocals"]
# 955717e8's arguments besides demucs's defaults (its checkpoint: 41,984,456 parameters, 533 tensors)
HTDEMUCS = {"segment": Fraction(39, 5), "bottom_channels": 512, "dconv_mode": 3}


def reference_model(seed=0):
    """A demucs HTDemucs of `htdemucs`'s shape, its LayerScales random (fresh ones are near zero)."""
    import torch
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    model = HTDemucs(sources=SOURCES, **HTDEMUCS).eval()
    with torch.no_grad():
        for name, value in model.named_parameters():
            if name.endswith(".scale"):
                value.uniform_(0.2, 1.0)
    return model


def openvino_core(model, repeats):
    """The network alone on one segment: XLA float32 against OpenVINO float32 and bfloat16."""
    import numpy as np
    import openvino as ov
    import tensorflow as tf

    audio = (np.random.default_rng(0).standard_normal((1, 2, model.training_length)) * 0.1).astype(np.float32)
    x, xt, _ = model.prepare(tf.constant(audio))
    spec = [tf.TensorSpec(x.shape, tf.float32), tf.TensorSpec(xt.shape, tf.float32)]
    xla = tf.function(model.network, input_signature=spec, jit_compile=True)
    converted = ov.convert_model(tf.function(model.network, input_signature=spec).get_concrete_function())
    core = ov.Core()
    sides = {"XLA float32": lambda: [t.numpy() for t in xla(x, xt)]}
    for hint in ("f32", "bf16"):
        compiled = core.compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                         "INFERENCE_NUM_THREADS": THREADS})
        sides[f"OpenVINO {hint}"] = lambda c=compiled: list(c([x.numpy(), xt.numpy()]).values())
    outputs, best = take_turns(sides, repeats)
    print(f"the network alone, one {model.training_length}-sample segment, {THREADS} threads, best of {repeats}")
    print("| side | seconds | vs XLA | difference from XLA (spectral, temporal branch) |")
    print("| --- | --- | --- | --- |")
    for name, seconds in best.items():
        errors = [np.abs(o - r).max() / np.abs(r).max() for o, r in zip(outputs[name], outputs["XLA float32"])]
        print(f"| {name} | {seconds:.2f} | {best['XLA float32'] / seconds:.2f} | "
              f"{', '.join(f'{e:.1e}' for e in errors)} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--runtimes", nargs="+", default=["xla"], help="ours: xla, or xla-bfloat16")
    parser.add_argument("--openvino", action="store_true", help="time the network alone on OpenVINO (see above)")
    args = parser.parse_args()
    limit_threads()
    import numpy as np
    import torch
    from demucs.apply import apply_model

    from umx_core import Separator
    from umx_core.nn.htdemucs import HTDemucs
    from umx_core.nn.htdemucs_weights import assign_htdemucs_weights

    reference = reference_model()
    model = HTDemucs(SOURCES, **HTDEMUCS)
    assign_htdemucs_weights(model, {k: v.numpy() for k, v in reference.state_dict().items()})
    if args.openvino:
        return openvino_core(model, args.repeats)
    audio = (np.random.default_rng(0).standard_normal((1, 2, int(args.seconds * RATE))) * 0.1).astype(np.float32)
    torch_audio = torch.from_numpy(audio)

    def demucs():
        with torch.no_grad():
            return apply_model(reference, torch_audio, shifts=0, split=True, overlap=0.25).numpy()

    sides = {"demucs (torch)": demucs}
    for runtime in args.runtimes:
        name, _, precision = runtime.partition("-")
        separator = Separator(model, shifts=0, runtime=name, precision=precision or "float32")
        sides[f"ours, {runtime}"] = lambda s=separator: s(audio)
    outputs, best = take_turns(sides, args.repeats)
    base = best["demucs (torch)"]
    ref = outputs["demucs (torch)"].astype(np.float64)
    print(f"htdemucs shape, random weights, {args.seconds:.0f} s stereo, {THREADS} threads, best of {args.repeats}")
    print("| side | seconds | x real time | speed vs demucs | SNR vs demucs (dB, worst stem) |")
    print("| --- | --- | --- | --- | --- |")
    for name, seconds in best.items():
        out = outputs[name].astype(np.float64)
        snr = min(10 * np.log10(np.sum(ref[:, k] ** 2) / max(np.sum((ref[:, k] - out[:, k]) ** 2), 1e-30))
                  for k in range(len(SOURCES)))
        print(f"| {name} | {seconds:.2f} | {args.seconds / seconds:.2f} | {base / seconds:.2f} | "
              f"{'-' if name.startswith('demucs') else f'{snr:.1f}'} |")


if __name__ == "__main__":
    main()
