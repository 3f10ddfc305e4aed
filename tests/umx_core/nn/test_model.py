"""Spectral filters against openunmix's OpenUnmix; joint models; pluggable filters."""

import keras
import numpy as np
import pytest
import torch

from tests.conftest import random_openunmix, rel_error
from umx_core.convert import filter_from_openunmix, infer_filter_kwargs
from umx_core.nn.model import (BLSTMSpectralFilterLayer, JointSpectralFilter, bandwidth_to_max_bin,
                            get_joint_spectral_filter)


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


@pytest.mark.parametrize("targets", [["vocals"], ["vocals", "drums", "bass", "other", "guitar"]])
def test_joint_models_stack_every_target(rng, targets):
    kwargs = dict(nb_bins=65, nb_channels=2, hidden_size=8, nb_layers=1)
    functional = get_joint_spectral_filter(targets, **kwargs)
    subclassed = JointSpectralFilter(targets, filter_kwargs=kwargs)
    mag = np.abs(rng.standard_normal((2, 11, 65, 2))).astype(np.float32)
    subclassed.build(mag.shape)
    # same weights in both: copy layer by layer, then each stacked slice is that target's filter
    for name in targets:
        subclassed.filters[name].set_weights(functional.get_layer(name).get_weights())
    out_f = np.asarray(functional(mag))
    out_s = subclassed(mag).numpy()
    assert out_f.shape == out_s.shape == (2, len(targets), 11, 65, 2)
    np.testing.assert_allclose(out_f, out_s, rtol=1e-5, atol=1e-6)
    for k, name in enumerate(targets):
        np.testing.assert_allclose(out_s[:, k], subclassed.filters[name](mag).numpy(), rtol=1e-5, atol=1e-6)
    # targets differ: every filter has its own weights
    if len(targets) > 1:
        assert not np.allclose(out_s[:, 0], out_s[:, 1])


@keras.saving.register_keras_serializable(package="tests")
class HalfMask(keras.layers.Layer):
    """A trivial filter with the BLSTM filter's contract: mixture magnitude in, target magnitude out."""

    def call(self, mix, training=False):
        return 0.5 * mix


def test_any_layer_with_the_contract_plugs_in(rng):
    mag = np.abs(rng.standard_normal((1, 5, 65, 2))).astype(np.float32)
    functional = get_joint_spectral_filter(["a", "b"], nb_bins=65, filter_factory=lambda name: HalfMask(name=name))
    subclassed = JointSpectralFilter(["a", "b"], filters={"a": HalfMask(), "b": HalfMask()})
    for model in (functional, subclassed):
        np.testing.assert_allclose(np.asarray(model(mag)), np.stack([0.5 * mag] * 2, axis=1), rtol=1e-6)
