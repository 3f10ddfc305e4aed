"""umx_core/runtime/onnx_export.py: the filters' ONNX graph against the Keras layers, run by onnxruntime."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import random_filters, rel_error
from umx_core import Separator
from umx_core.nn.spectral_filter import apply_filter
from umx_core.runtime.onnx_export import filters_to_onnx

onnxruntime = pytest.importorskip("onnxruntime")  # a test dependency: pinned in requirements/constraints.txt
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def run_onnx(model, magnitude, lengths, offsets, width):
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"magnitude": magnitude.astype(np.float32), "lengths": lengths.astype(np.int32),
                              "offsets": offsets.astype(np.int64), "width": np.array(width, np.int64)})[0]


@pytest.mark.parametrize("kwargs", [dict(nb_layers=3), dict(nb_layers=1), dict(nb_layers=2, unidirectional=True),
                                    dict(nb_layers=2, nb_channels=1)], ids=["3 layers", "1 layer", "causal", "mono"])
def test_the_graph_equals_the_keras_filters(kwargs):
    """Zero-padded sequences of several lengths, centre frames cut at offsets: as the chunk engine asks."""
    channels = kwargs.pop("nb_channels", 2)
    targets = ("vocals", "drums", "bass")
    filters = random_filters(targets, nb_bins=129, max_bin=100, hidden_size=16, nb_channels=channels, **kwargs)
    rng = np.random.default_rng(0)
    frames, width = 40, 24
    magnitude = np.abs(rng.standard_normal((3, frames, 129, channels))).astype(np.float32)
    lengths = np.array([40, 31, 17], np.int32)
    magnitude[1, 31:] = 0
    magnitude[2, 17:] = 0
    offsets = np.array([8, 4, 0], np.int64)
    model = filters_to_onnx(list(filters.values()), list(targets), 129, channels)
    got = run_onnx(model, magnitude, lengths, offsets, width)
    assert got.shape == (3, len(targets), width, 129, channels)
    for k, layer in enumerate(filters.values()):
        expected = apply_filter(layer, magnitude, lengths, centre=(offsets.astype(np.int32), width)).numpy()
        for b in range(3):  # the frames a chunk's own (valid) centre covers
            valid = max(0, min(width, lengths[b] - offsets[b]))
            assert rel_error(got[b, k, :valid], expected[b, :valid]) < 1e-5, (k, b)


def test_separator_export_writes_the_file_and_what_the_host_needs(tmp_path):
    onnx = pytest.importorskip("onnx")
    separator = Separator(random_filters(("vocals", "other")), niter=1, sample_rate=8000, n_fft=256, n_hop=64)
    path = separator.export(str(tmp_path / "filters.onnx"), format="onnx")
    model = onnx.load(path)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["targets"] == "vocals,other" and (props["n_fft"], props["n_hop"]) == ("256", "64")
    assert json.loads(props["separator"])["niter"] == 1
    assert [i.name for i in model.graph.input] == ["magnitude", "lengths", "offsets", "width"]
    assert any(node.op_type == "LSTM" for node in model.graph.node)  # the native op, not a Loop
    assert not any(node.op_type in ("Loop", "Scan") for node in model.graph.node)


def test_the_docs_example_runs_with_numpy_and_onnxruntime_alone(tmp_path):
    """docs/models.md's example, run where TensorFlow and this package cannot be imported."""
    separator = Separator(random_filters(("vocals", "other")), niter=1, sample_rate=8000, n_fft=256, n_hop=64)
    separator.export(str(tmp_path / "filters.onnx"), format="onnx")
    text = open(os.path.join(REPO, "docs", "models.md")).read()
    start = text.index("<!-- onnx-example -->")
    code = text[text.index("```python", start) + len("```python"): text.index("```", text.index("```python", start) + 9)]
    guard = "import sys\nsys.modules.update(dict.fromkeys(['tensorflow', 'keras', 'umx_core', 'torch']))\n"
    done = subprocess.run([sys.executable, "-c", guard + code.replace("filters.onnx", str(tmp_path / "filters.onnx"))],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "estimates" in done.stdout
