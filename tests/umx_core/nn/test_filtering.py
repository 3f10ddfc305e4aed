"""EM / Wiener filtering against norbert (numpy, float64) and openunmix's torch version."""

import norbert
import numpy as np
import pytest
import torch

from tests.conftest import rel_error
from umx_core.errors import UMXError
from umx_core.nn.filtering import ExpectationMaximization, wiener


def random_problem(rng, frames=40, bins=33, channels=2, sources=3, source_channels=None):
    v = np.abs(rng.standard_normal((frames, bins, source_channels or channels, sources))).astype(np.float32) * 5
    x = (rng.standard_normal((frames, bins, channels)) + 1j * rng.standard_normal((frames, bins, channels))) * 20
    return v, x.astype(np.complex64)


@pytest.mark.parametrize("iterations", [0, 1, 2])
@pytest.mark.parametrize("softmask", [False, True])
@pytest.mark.parametrize("channels", [1, 2])
def test_wiener_equals_norbert(rng, iterations, softmask, channels):
    v, x = random_problem(rng, channels=channels)
    ours = wiener(v, x, iterations=iterations, softmask=softmask).numpy()
    # norbert in double precision with the same (default) eps: that of float32
    eps = np.finfo(np.float32).eps
    ref = norbert.wiener(v.astype(np.float64), x.astype(np.complex128), iterations, use_softmask=softmask, eps=eps)
    assert ours.shape == ref.shape
    assert rel_error(ours, ref) < 1e-4


@pytest.mark.parametrize("iterations", [0, 1, 2])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("softmask", [False, True])
def test_wiener_equals_openunmix_with_residual(rng, iterations, residual, softmask):
    from openunmix.filtering import wiener as torch_wiener

    v, x = random_problem(rng, sources=2)
    ours = wiener(v, x, iterations=iterations, softmask=softmask, residual=residual, eps=1e-10).numpy()
    with torch.no_grad():
        ref = torch_wiener(torch.from_numpy(v), torch.view_as_real(torch.from_numpy(x)), iterations,
                           softmask=softmask, residual=residual, eps=1e-10)
    ref = torch.view_as_complex(ref.permute(0, 1, 2, 4, 3).contiguous()).numpy()
    assert ours.shape == ref.shape == (40, 33, 2, 3 if residual else 2)
    assert rel_error(ours, ref) < 1e-4


def test_windows_are_independent(rng):
    v, x = random_problem(rng, frames=70)
    windowed = wiener(v, x, iterations=1, wiener_win_len=30).numpy()
    pieces = [wiener(v[s:s + 30], x[s:s + 30], iterations=1).numpy() for s in (0, 30, 60)]
    np.testing.assert_allclose(windowed, np.concatenate(pieces), rtol=1e-5, atol=1e-5)
    whole = wiener(v, x, iterations=1).numpy()
    assert rel_error(windowed, whole) > 1e-3  # windowing does change the result


def test_mono_model_on_stereo_mix(rng):
    v, x = random_problem(rng, channels=2, source_channels=1)
    ours = wiener(v, x, iterations=1).numpy()
    ref = norbert.wiener(np.repeat(v, 2, axis=2).astype(np.float64), x.astype(np.complex128), 1, use_softmask=False,
                         eps=np.finfo(np.float32).eps)
    assert rel_error(ours, ref) < 1e-4


def test_layer_takes_batch_first_layout(rng):
    v, x = random_problem(rng, frames=50)
    layer = ExpectationMaximization(iterations=1, residual=True, eps=1e-7, wiener_win_len=20)
    spec = np.stack([v, v[::-1]])  # (batch, frames, bins, ch, sources)
    mix = np.stack([x, x[::-1]])
    out = layer(spec.transpose(0, 4, 1, 2, 3), mix).numpy()  # -> (batch, sources, frames, bins, ch)
    for b in range(2):
        ref = wiener(spec[b], mix[b], iterations=1, residual=True, eps=1e-7, wiener_win_len=20).numpy()
        np.testing.assert_allclose(out[b], ref.transpose(3, 0, 1, 2), rtol=1e-5, atol=1e-4)


def test_bad_arguments_raise(rng):
    v, x = random_problem(rng, sources=1)
    with pytest.raises(UMXError, match="at least two sources"):
        wiener(v, x, iterations=1)
    with pytest.raises(UMXError, match=">= 0"):
        wiener(v, x, iterations=-1)
    with pytest.raises(UMXError, match="expects"):
        wiener(v[0], x, iterations=0)
    wiener(v, x, iterations=1, residual=True)  # one target plus a residual is fine
