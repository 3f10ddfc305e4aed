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


def cpu_flags():
    """The CPU's feature flags as Linux lists them, read apart from OpenVINO (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            return {flag for line in f if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    except OSError:
        return set()


@pytest.fixture
def cpu(monkeypatch):
    """`cpu(capabilities)`: OpenVINO's CPU plugin then reports those optimisation capabilities; returns a
    list that collects `(configuration asked for, compiled model)` of every compile."""

    def make(capabilities):
        compiled = []

        class Core(openvino.Core):
            def get_property(self, device, name, *args):
                if name == "OPTIMIZATION_CAPABILITIES":
                    return list(capabilities)
                return super().get_property(device, name, *args)

            def compile_model(self, model, device=None, config=None, **kwargs):
                done = super().compile_model(model, device, config, **kwargs)
                compiled.append((dict(config or {}), done))
                return done

        monkeypatch.setattr(openvino, "Core", Core)
        return compiled

    return make


AUDIO = (np.random.default_rng(4).standard_normal((1, 2, 16000 * 2)) * 0.1).astype(np.float32)


def test_bfloat16_on_a_cpu_without_it_runs_float32_and_says_so(cpu, caplog):
    compiled = cpu(["WINOGRAD", "FP32", "FP16", "INT8", "BIN", "EXPORT_IMPORT"])  # an AVX2 machine's list
    with caplog.at_level(logging.WARNING):
        ov = separator(precision="bfloat16", runtime="openvino")
    assert ov.precision == "float32" and "runs float32" in caplog.text
    stems = ov(AUDIO)
    assert compiled and all(config["INFERENCE_PRECISION_HINT"] == "f32" for config, _ in compiled)
    # float32's stems: bfloat16's are about 1e-2 away from them (this random model)
    assert rel_error(stems, separator(runtime="openvino")(AUDIO)) < 1e-6
    assert rel_error(stems, separator()(AUDIO)) < 2e-5  # and the XLA path's


def test_bfloat16_on_a_cpu_with_it_asks_openvino_for_bfloat16(cpu, caplog):
    compiled = cpu(["BF16", "WINOGRAD", "FP32", "FP16", "INT8", "BIN", "EXPORT_IMPORT"])
    with caplog.at_level(logging.WARNING):
        ov = separator(precision="bfloat16", runtime="openvino")
    assert ov.precision == "bfloat16" and "runs float32" not in caplog.text
    stems = ov(AUDIO)
    assert compiled and all(config["INFERENCE_PRECISION_HINT"] == "bf16" for config, _ in compiled)
    if {"avx512_bf16", "amx_bf16"} & cpu_flags():  # this CPU computes bfloat16: OpenVINO does, as asked
        assert all(done.get_property("INFERENCE_PRECISION_HINT") == openvino.Type.bf16 for _, done in compiled)
        # near float32's stems, not equal (its cost on trained models: docs/benchmarks.md, "Network runtimes")
        assert 1e-4 < rel_error(stems, separator()(AUDIO)) < 0.3


def test_the_bfloat16_detection_finds_what_linux_lists():
    """A CPU with AVX512-BF16 or AMX (as /proc/cpuinfo says) is one OpenVINO computes bfloat16 on."""
    from umx_core.runtime.openvino import has_bfloat16

    if not {"avx512_bf16", "amx_bf16"} & cpu_flags():
        pytest.skip("this CPU lists neither avx512_bf16 nor amx_bf16")
    assert has_bfloat16()


def test_without_openvino_the_error_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_openvino(name, *args, **kwargs):
        if name == "openvino" or name.startswith("openvino."):
            raise ImportError("no openvino")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(UMXError, match=r"runtime openvino needs the openvino package: pip install 'umx-tf\[openvino\]'"):
        separators()
