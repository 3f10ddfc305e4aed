"""STFT / ISTFT / magnitude against torch, and the STFT -> ISTFT round trip."""

import numpy as np
import pytest
import torch

from tests.conftest import rel_error
from umx_core.nn.transforms import ComplexNorm, ISTFTLayer, STFTLayer, frame_count


def torch_stft(x, n_fft, hop, center):
    batch, channels, length = x.shape
    spec = torch.stft(torch.from_numpy(x).reshape(-1, length), n_fft, hop, window=torch.hann_window(n_fft),
                      center=center, pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    # (batch*channels, bins, frames) -> (batch, frames, bins, channels)
    return spec.numpy().reshape(batch, channels, spec.shape[-2], spec.shape[-1]).transpose(0, 3, 2, 1)


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("shape,n_fft,hop", [((2, 2, 44100), 4096, 1024), ((1, 1, 10001), 1024, 512),
                                             ((3, 2, 9000), 512, 128)])
def test_stft_equals_torch(rng, shape, n_fft, hop, center):
    x = rng.standard_normal(shape).astype(np.float32)
    ours = STFTLayer(n_fft, hop, center=center)(x).numpy()
    ref = torch_stft(x, n_fft, hop, center)
    assert ours.shape == ref.shape
    assert ours.shape[1] == frame_count(shape[-1], n_fft, hop, center)
    assert rel_error(ours, ref) < 1e-5


@pytest.mark.parametrize("length", [44100, 44101, 45055, 5000, 4097, 2049])
def test_istft_inverts_stft_for_any_length(rng, length):
    x = rng.standard_normal((2, 2, length)).astype(np.float32)
    y = ISTFTLayer()(STFTLayer()(x), length=length).numpy()
    assert y.shape == x.shape
    assert np.sqrt(np.mean((y - x) ** 2) / np.mean(x**2)) < 1e-6


@pytest.mark.parametrize("length", [30000, 30001])
def test_istft_equals_torch_istft(rng, length):
    shape = (1, 2, 513, 1 + length // 256)
    spec = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    spec = spec.astype(np.complex64)
    ref = torch.istft(torch.from_numpy(spec[0]), 1024, 256, window=torch.hann_window(1024), center=True,
                      length=length).numpy()[None]
    ours = ISTFTLayer(1024, 256)(spec.transpose(0, 3, 2, 1), length=length).numpy()
    assert rel_error(ours, ref) < 1e-5


def test_istft_keeps_leading_axes(rng):
    spec = (rng.standard_normal((2, 3, 20, 513, 2)) + 0j).astype(np.complex64)  # (batch, targets, ...)
    out = ISTFTLayer(1024, 256)(spec, length=5000).numpy()
    assert out.shape == (2, 3, 2, 5000)
    single = ISTFTLayer(1024, 256)(spec[1, 2][None], length=5000).numpy()
    np.testing.assert_allclose(out[1, 2], single[0], atol=1e-6)


@pytest.mark.parametrize("mono", [False, True])
def test_complex_norm_matches_openunmix(rng, mono):
    from openunmix.transforms import ComplexNorm as TorchNorm

    spec = (rng.standard_normal((2, 7, 33, 2)) + 1j * rng.standard_normal((2, 7, 33, 2))).astype(np.complex64)
    ours = ComplexNorm(mono=mono)(spec).numpy()
    # openunmix: (batch, channels, bins, frames, 2) real/imag
    torch_in = torch.view_as_real(torch.from_numpy(spec.transpose(0, 3, 2, 1).copy()))
    ref = TorchNorm(mono=mono)(torch_in).numpy().transpose(0, 3, 2, 1)
    assert ours.shape == ref.shape == (2, 7, 33, 1 if mono else 2)
    assert rel_error(ours, ref) < 1e-6
