"""EM speed: umx_core.nn.filtering.wiener against norbert.wiener on the same inputs, one run.

30 s of stereo (1292 frames x 2049 bins), 4 sources, 1 EM iteration, whole track in one
window (norbert has no windows). Both in single precision (norbert keeps the input dtype).
Prints each one's time, the ratio, and the relative difference to norbert in double precision.

    .venv/bin/python bench/em_speed.py [--frames 1292] [--iterations 1]
"""

import argparse

from common import THREADS, best_time, limit_threads


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1292)
    parser.add_argument("--iterations", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    limit_threads()
    import norbert
    import numpy as np
    import tensorflow as tf

    from umx_core.nn.filtering import wiener

    rng = np.random.default_rng(0)
    shape = (args.frames, 2049, 2)
    v = (np.abs(rng.standard_normal(shape + (4,))) * 3).astype(np.float32)
    x = ((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * 10).astype(np.complex64)
    eps = float(np.finfo(np.float32).eps)
    ours = tf.function(lambda v, x: wiener(v, x, iterations=args.iterations, eps=eps), jit_compile=True)
    v_t, x_t = tf.constant(v), tf.constant(x)
    t_ours = best_time(lambda: ours(v_t, x_t).numpy(), args.repeats)
    t_ref = best_time(lambda: norbert.wiener(v, x.copy(), args.iterations, use_softmask=False, eps=eps), 1)
    exact = norbert.wiener(v.astype(np.float64), x.astype(np.complex128), args.iterations, use_softmask=False, eps=eps)
    result = ours(v_t, x_t).numpy()
    error = np.linalg.norm(result - exact) / np.linalg.norm(exact)
    print(f"{args.frames} frames x 2049 bins, stereo, 4 sources, {args.iterations} iteration(s), {THREADS} threads")
    print(f"norbert {t_ref:.2f} s  umx_core {t_ours:.3f} s  ratio {t_ref / t_ours:.1f}  "
          f"rel. difference to norbert float64 {error:.1e}")


if __name__ == "__main__":
    main()
