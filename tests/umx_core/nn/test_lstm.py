"""LSTMStack against torch.nn.LSTM with the same weights; padding is exact."""

import numpy as np
import pytest
import torch

from tests.conftest import rel_error
from umx_core.nn.lstm import LSTMStack


def copy_torch_lstm(layer, lstm):
    suffixes = ["", "_reverse"] if lstm.bidirectional else [""]
    sd = {k: v.detach().numpy() for k, v in lstm.state_dict().items()}
    for k in range(lstm.num_layers):
        layer.kernels[k].assign(np.concatenate([sd[f"weight_ih_l{k}{s}"].T for s in suffixes], axis=1))
        layer.recurrent_kernels[k].assign(np.stack([sd[f"weight_hh_l{k}{s}"].T for s in suffixes]))
        layer.biases[k].assign(np.concatenate([sd[f"bias_ih_l{k}{s}"] + sd[f"bias_hh_l{k}{s}"] for s in suffixes]))


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("nb_layers", [1, 3])
def test_lstm_stack_equals_torch(rng, bidirectional, nb_layers):
    torch.manual_seed(0)
    ref = torch.nn.LSTM(12, 8, num_layers=nb_layers, bidirectional=bidirectional, batch_first=True).eval()
    layer = LSTMStack(8, nb_layers=nb_layers, bidirectional=bidirectional)
    layer.build((None, None, 12))
    copy_torch_lstm(layer, ref)
    x = rng.standard_normal((3, 25, 12)).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x))[0].numpy()
    assert rel_error(layer(x).numpy(), expected) < 1e-5


def test_padded_sequences_give_unpadded_outputs(rng):
    layer = LSTMStack(6, nb_layers=2, bidirectional=True)
    short = rng.standard_normal((1, 9, 4)).astype(np.float32)
    long = rng.standard_normal((1, 15, 4)).astype(np.float32)
    batch = np.zeros((2, 15, 4), np.float32)
    batch[0, :9] = short[0]
    batch[1] = long[0]
    out = layer(batch, lengths=np.array([9, 15])).numpy()
    np.testing.assert_allclose(out[0, :9], layer(short).numpy()[0], atol=1e-6)
    np.testing.assert_allclose(out[1], layer(long).numpy()[0], atol=1e-6)
    # without lengths the padding would change the backward direction: the test can fail
    unmasked = layer(batch).numpy()
    assert np.abs(unmasked[0, :9] - out[0, :9]).max() > 1e-4


def test_dropout_only_when_training(rng):
    layer = LSTMStack(6, nb_layers=3, dropout=0.4)
    x = rng.standard_normal((2, 10, 4)).astype(np.float32)
    np.testing.assert_array_equal(layer(x).numpy(), layer(x).numpy())
    assert not np.allclose(layer(x, training=True).numpy(), layer(x).numpy())
