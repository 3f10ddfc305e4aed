"""The BLSTM spectral filter against openunmix's OpenUnmix; its data scaler; bandwidth to bins."""

import numpy as np
import pytest
import torch

from tests.conftest import random_openunmix, rel_error
from umx_core.convert import filter_from_openunmix, infer_filter_kwargs
from umx_core.nn.spectral_filter import BLSTMSpectralFilterLayer, bandwidth_to_max_bin


def torch_filter(model, mag):
    """openunmix takes (batch, channels, bins, frames); ours is (batch, frames, bins, channels)."""
    with torch.no_grad():
        out = model(torch.from_numpy(mag.transpose(0, 3, 2, 1).copy())).numpy()
    return out.transpose(0, 3, 2, 1)


@pytest.mark.parametrize("channels,unidirectional,layers", [(2, False, 3), (1, False, 2), (2, True, 1)])
def test_filter_equals_openunmix(rng, channels, unidirectional, layers):
    ref = random_openunmix(nb_channels=channels, hidden_size=24, nb_layers=layers, unidirectional=unidirectional)
    layer = filter_from_openunmix(ref.state_dict())
    assert infer_filter_kwargs(ref.state_dict())["unidirectional"] == unidirectional
    mag = np.abs(rng.standard_normal((2, 30, 2049, channels))).astype(np.float32)
    assert rel_error(layer(mag).numpy(), torch_filter(ref, mag)) < 1e-5


@pytest.mark.parametrize("rate,n_fft,bandwidth", [(44100.0, 4096, 16000), (16000.0, 1024, 8000), (44100.0, 2048, 100)])
def test_bandwidth_to_max_bin_matches_openunmix(rate, n_fft, bandwidth):
    from openunmix.utils import bandwidth_to_max_bin as ref

    assert bandwidth_to_max_bin(rate, n_fft, bandwidth) == int(ref(rate, n_fft, bandwidth))


def test_data_statistics_set_the_input_scaler(rng):
    mean = rng.uniform(0, 1, 2049).astype(np.float32)
    std = rng.uniform(0.5, 2, 2049).astype(np.float32)
    layer = BLSTMSpectralFilterLayer(nb_bins=2049, hidden_size=8, max_bin=100, input_mean=mean, input_scale=std)
    layer.build((None, None, 2049, 2))
    np.testing.assert_allclose(layer.input_mean.numpy(), -mean[:100])
    np.testing.assert_allclose(layer.input_scale.numpy(), 1 / std[:100], rtol=1e-6)
    assert len(layer.trainable_weights) > 4  # the four scalers are trainable, with the rest
    names = {w.path.split("/")[-1] for w in layer.trainable_weights}
    assert {"input_mean", "input_scale", "output_scale", "output_mean"} <= names

