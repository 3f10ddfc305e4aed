"""X-UMX's crossing of the targets' filters (`bridge=True`) against numpy, and through every path a model takes."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import random_filters, rel_error
from umx_core import Separator
from umx_core.nn.model import JointSpectralFilter, get_joint_spectral_filter
from umx_core.nn.umx import UMX

TARGETS = ("vocals", "drums", "bass")


def numpy_dense_bn(x, dense, bn):
    y = x @ dense.kernel.numpy()
    return (y - bn.moving_mean.numpy()) / np.sqrt(bn.moving_variance.numpy() + bn.epsilon) * bn.gamma.numpy() + \
        bn.beta.numpy()


def numpy_encode(layer, mix):
    x = mix[:, :, : layer.max_bin, :]
    x = (x + layer.input_mean.numpy()[:, None]) * layer.input_scale.numpy()[:, None]
    x = x.reshape(x.shape[0], x.shape[1], -1)
    return np.tanh(numpy_dense_bn(x, layer.fc1, layer.bn1))


def numpy_decode(layer, features, mix):
    x = np.maximum(numpy_dense_bn(features, layer.fc2, layer.bn2), 0)
    x = numpy_dense_bn(x, layer.fc3, layer.bn3).reshape(mix.shape)
    x = x * layer.output_scale.numpy()[:, None] + layer.output_mean.numpy()[:, None]
    return np.maximum(x, 0) * mix


def magnitude(frames=30, bins=129, seed=0):
    return np.abs(np.random.default_rng(seed).standard_normal((2, frames, bins, 2))).astype(np.float32)


def test_the_bridges_are_the_means_of_the_branches():
    """The first bridge feeds every LSTM the mean of the targets' encodings; the second feeds every
    decoder the mean over targets of [encoding, LSTM output] (numpy, from the weights; the LSTM
    itself is checked against torch in test_lstm.py)."""
    filters = random_filters(TARGETS, hidden_size=16, nb_layers=2)
    for layer in filters.values():
        layer.lstm.dropout = 0.0
    mix = magnitude()
    got = JointSpectralFilter(list(filters), filters=filters, bridge=True)(mix).numpy()
    layers = list(filters.values())
    encoded = [numpy_encode(layer, mix) for layer in layers]
    shared = np.mean(encoded, axis=0)
    features = np.mean([np.concatenate([own, layer.lstm(shared.astype(np.float32)).numpy()], axis=-1)
                        for own, layer in zip(encoded, layers)], axis=0)
    for k, layer in enumerate(layers):
        assert rel_error(got[:, k], numpy_decode(layer, features, mix)) < 1e-5
    apart = JointSpectralFilter(list(filters), filters=filters)(mix).numpy()
    assert rel_error(got, apart) > 1e-2  # the crossing changes the estimates


def test_gradients_reach_every_target():
    """A loss on one target's estimate trains every target's encoder and LSTM (the bridges), and
    only its own decoder."""
    filters = random_filters(TARGETS, hidden_size=16)
    joint = JointSpectralFilter(list(filters), filters=filters, bridge=True)
    mix = tf.constant(magnitude())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(joint(mix, training=True)[:, 0])
    variables = [v for layer in filters.values() for v in (layer.fc1.kernel, layer.lstm.kernels[0], layer.fc3.kernel)]
    grads = tape.gradient(loss, variables)
    norms = [float(tf.norm(g)) if g is not None else 0.0 for g in grads]
    for k in range(len(TARGETS)):
        assert norms[3 * k] > 0 and norms[3 * k + 1] > 0, TARGETS[k]  # fc1, LSTM of every target
    assert norms[2] > 0 and norms[5] == 0 and norms[8] == 0  # fc3: only the target the loss is on


def test_the_functional_and_subclassed_joints_agree_and_bridging_needs_blstm_filters():
    filters = random_filters(TARGETS, hidden_size=16)
    mix = magnitude()
    functional = get_joint_spectral_filter(list(filters), nb_bins=129, bridge=True, hidden_size=16, max_bin=100)
    functional.set_weights(JointSpectralFilter(list(filters), filters=filters, bridge=True).get_weights())
    assert rel_error(functional(mix).numpy(), JointSpectralFilter(list(filters), filters=filters, bridge=True)(mix)
                     .numpy()) < 1e-6
    with pytest.raises(ValueError, match="two or more"):
        JointSpectralFilter(["vocals"], filters={"vocals": filters["vocals"]}, bridge=True)
    with pytest.raises(ValueError, match="one hidden size"):
        other = random_filters(("x",), hidden_size=8)["x"]
        JointSpectralFilter(["vocals", "x"], filters={"vocals": filters["vocals"], "x": other}, bridge=True)


def test_a_bridged_model_survives_save_load_export_and_the_other_runtimes(tmp_path):
    """The Separator's chunked path equals the whole-input UMX (one chunk); save -> load, SavedModel ->
    load_separator, ONNX (onnxruntime) and OpenVINO give the same stems or estimates."""
    from umx_core.pretrained import load_separator

    filters = random_filters(TARGETS, nb_bins=257, max_bin=200, hidden_size=16)
    separator = Separator(UMX(list(filters), filters=filters, n_fft=512, n_hop=128, sample_rate=16000, niter=1,
                              bridge=True), wiener_win_len=80)
    assert separator.model.joint.bridge and len(separator.engine.program.runner.programs) == 1
    audio = (np.random.default_rng(1).standard_normal((1, 2, 16000)) * 0.1).astype(np.float32)
    stems = separator(audio)
    assert rel_error(stems, separator.model(audio).numpy()) < 1e-5  # 126 frames: one chunk, the whole input
    separator.save(str(tmp_path / "saved"))
    separator.export(str(tmp_path / "exported"))
    for path in ("saved", "exported"):
        again = load_separator(str(tmp_path / path))
        assert again.model.joint.bridge and rel_error(again(audio), stems) < 1e-6, path
    onnxruntime = pytest.importorskip("onnxruntime")
    onnx_path = separator.export(str(tmp_path / "filters.onnx"), format="onnx")
    mag = magnitude(frames=40, bins=257)
    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    got = session.run(None, {"magnitude": mag, "lengths": np.array([40, 40], np.int32),
                             "offsets": np.array([0, 0]), "width": np.array(40)})[0]
    assert rel_error(got, separator.model.joint(mag).numpy()) < 1e-5
    pytest.importorskip("openvino")
    on_openvino = Separator(separator.model, runtime="openvino", wiener_win_len=80)
    assert rel_error(on_openvino(audio), stems) < 2e-5


def test_targets_of_a_bridged_model_are_computed_with_every_filter(tmp_path):
    """`load_separator(..., targets=)` on a bridged model keeps every filter (each target depends on
    them all): without EM its stems are the whole model's rows; an unbridged subset would differ."""
    from umx_core.pretrained import load_separator

    filters = random_filters(TARGETS, nb_bins=257, max_bin=200, hidden_size=16)
    whole = Separator(UMX(list(filters), filters=filters, n_fft=512, n_hop=128, sample_rate=16000, bridge=True),
                      niter=0, wiener_win_len=80)
    whole.save(str(tmp_path / "saved"))
    audio = (np.random.default_rng(4).standard_normal((1, 2, 16000)) * 0.1).astype(np.float32)
    expected = whole(audio)
    some = load_separator(str(tmp_path / "saved"), targets=["bass", "vocals"])
    assert some.targets == ["bass", "vocals"] and len(some.model.joint.filter_layers) == 3
    assert rel_error(some(audio), expected[:, [2, 0]]) < 1e-6
    some.save(str(tmp_path / "some"))
    again = load_separator(str(tmp_path / "some"))
    assert again.targets == ["bass", "vocals"] and rel_error(again(audio), expected[:, [2, 0]]) < 1e-6
    unbridged = Separator({t: filters[t] for t in ("bass", "vocals")}, n_fft=512, n_hop=128, sample_rate=16000,
                          niter=0, wiener_win_len=80)
    assert rel_error(unbridged(audio), expected[:, [2, 0]]) > 1e-2
    pytest.importorskip("openvino")
    on_openvino = Separator(some.model, runtime="openvino", niter=0, wiener_win_len=80)
    assert rel_error(on_openvino(audio), expected[:, [2, 0]]) < 2e-5
