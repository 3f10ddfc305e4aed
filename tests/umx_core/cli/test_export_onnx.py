"""umx_core/cli/export_onnx.py: the command writes a saved model's filters, and names a bad model."""

import numpy as np
import pytest

from tests.conftest import random_filters
from umx_core import Separator
from umx_core.cli import export_onnx
from umx_core.nn.spectral_filter import apply_filter

onnxruntime = pytest.importorskip("onnxruntime")


def test_the_command_writes_the_saved_models_filters(tmp_path, capsys):
    filters = random_filters(("vocals", "other"))
    model = str(tmp_path / "model")
    Separator(filters, niter=1, sample_rate=8000, n_fft=256, n_hop=64).save(model)
    out = str(tmp_path / "filters.onnx")
    assert export_onnx.main([model, out]) == 0 and out in capsys.readouterr().out
    session = onnxruntime.InferenceSession(out, providers=["CPUExecutionProvider"])
    magnitude = np.abs(np.random.default_rng(0).standard_normal((1, 12, 129, 2))).astype(np.float32)
    got = session.run(None, {"magnitude": magnitude, "lengths": np.array([12], np.int32),
                             "offsets": np.array([0], np.int64), "width": np.array(12, np.int64)})[0]
    for k, layer in enumerate(filters.values()):  # the saved weights, not another model's
        np.testing.assert_allclose(got[:, k], np.asarray(apply_filter(layer, magnitude)), rtol=1e-4, atol=1e-5)


def test_a_model_that_is_not_there_is_named_with_exit_code_2(tmp_path, capsys):
    assert export_onnx.main([str(tmp_path / "nothing"), str(tmp_path / "f.onnx")]) == 2
    assert "nothing" in capsys.readouterr().err and not (tmp_path / "f.onnx").exists()
