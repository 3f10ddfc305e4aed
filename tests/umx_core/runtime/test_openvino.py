"""runtime="openvino": the filters on OpenVINO's CPU runtime, against the XLA path's stems."""

import builtins
import logging

import numpy as np
import pytest

from tests.conftest import random_filters, rel_error
from umx_core import Separator
from umx_core.errors import UMXError

openvino = pytest.importorskip("openvino")  # a test dependency: pinned in requirements/constraints.txt


def separator(**kwargs):
    """A 3-target separator with the same random weights every time (filters of its own)."""
    filters = random_filters(("vocals", "drums", "bass"), nb_bins=257, max_bin=200, hidden_size=16)
    return Separator(filters, niter=1, sample_rate=16000, n_fft=512, n_hop=128, wiener_win_len=40, context=8,
                     **kwargs)


def separators(**kwargs):
    return separator(**kwargs), separator(runtime="openvino", **kwargs)


def test_float32_stems_equal_the_xla_paths():
    """Several chunks per track, a short last chunk, two tracks in one batch, mono in a stereo model."""
    xla, ov = separators()
    assert (xla.runtime, ov.runtime) == ("xla", "openvino")
    rng = np.random.default_rng(3)
    for audio in (rng.standard_normal((2, 2, 16000 * 3 + 77)) * 0.1, rng.standard_normal((1, 1, 9000)) * 0.1):
        audio = audio.astype(np.float32)
        assert rel_error(ov(audio), xla(audio)) < 2e-5  # float32 rounding (fused kernels differ)


def test_bfloat16_runs_bfloat16_where_the_cpu_has_it_and_says_float32_elsewhere(caplog):
    from umx_core.runtime.openvino import has_bfloat16

    with caplog.at_level(logging.WARNING):
        ov = separator(precision="bfloat16", runtime="openvino")
    audio = (np.random.default_rng(4).standard_normal((1, 2, 16000 * 2)) * 0.1).astype(np.float32)
    reference = separator()(audio)  # float32, XLA
    error = rel_error(ov(audio), reference)
    if has_bfloat16():
        # computed in bfloat16: near, not equal (its cost on trained models: docs/benchmarks.md, "Network runtimes")
        assert ov.precision == "bfloat16" and 1e-4 < error < 0.3
    else:
        assert ov.precision == "float32" and error < 1e-5
        assert "runs float32" in caplog.text


def test_without_openvino_the_error_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("no openvino")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(UMXError, match=r"runtime openvino needs the openvino package: pip install 'umx-tf\[openvino\]'"):
        separators()
