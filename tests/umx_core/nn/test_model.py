"""Joint models: one filter per target, stacked; pluggable filters."""

import keras
import numpy as np
import pytest

from umx_core.nn.model import JointSpectralFilter, get_joint_spectral_filter


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
