"""Shared test setup: reference packages, random open-unmix models, a GCS emulator."""

import os
import socket
import subprocess
import sys
import time
import types

import numpy as np
import pytest

# The openunmix reference lives in <venv>/reference (Makefile), away from the venv's bin/ where its
# own `umx` script would replace ours. It imports torchaudio, which has no CPU build here; nothing
# the tests use from openunmix needs it, so an empty module stands in for the import.
REFERENCE = os.path.join(sys.prefix, "reference")
if os.path.isdir(REFERENCE) and REFERENCE not in sys.path:
    sys.path.append(REFERENCE)
sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
# PyPI's CUDA build of torch (Pythons without a CPU wheel here, see CONTRIBUTING.md) brings triton, whose
# native library crashes the process when torch loads it beside TensorFlow (torch.optim imports
# it). The tests run torch on the CPU, which never uses triton: torch sees it as absent.
sys.modules.setdefault("triton", None)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# compiled XLA programs of the commands the tests start go to a scratch folder, not the user's cache
os.environ.setdefault("UMX_XLA_CACHE", os.path.join(__import__("tempfile").mkdtemp(prefix="umx-xla-"), "xla"))

TARGETS = ("vocals", "drums", "bass")


def random_openunmix(nb_channels=2, hidden_size=16, nb_layers=2, max_bin=600, nb_bins=2049, seed=0,
                     unidirectional=False):
    """An eval-mode openunmix OpenUnmix with random weights and non-trivial BN statistics."""
    import torch
    from openunmix.model import OpenUnmix

    torch.manual_seed(seed)
    model = OpenUnmix(nb_bins=nb_bins, nb_channels=nb_channels, hidden_size=hidden_size, nb_layers=nb_layers,
                      max_bin=max_bin, unidirectional=unidirectional)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.3, 0.3)
        model.input_scale.uniform_(0.5, 2.0)
        model.output_mean.uniform_(0.5, 1.5)
        for bn in (model.bn1, model.bn2, model.bn3):
            bn.running_mean.uniform_(-0.3, 0.3)
            bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


def random_openunmix_targets(targets=TARGETS, **kwargs):
    """`{target: OpenUnmix}` with a different seed per target."""
    return {t: random_openunmix(seed=i, **kwargs) for i, t in enumerate(targets)}


def state_dicts(models):
    return {name: m.state_dict() for name, m in models.items()}


def rel_error(ours, ref):
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def gcs_emulator():
    """gcp-storage-emulator on loopback with STORAGE_EMULATOR_HOST set; yields a bucket name."""
    port = _free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "gcp-storage-emulator")
    proc = subprocess.Popen([exe, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    host = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("gcp-storage-emulator did not start")
            time.sleep(0.2)
    old = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = host
    from umx_core import storage

    storage.client().create_bucket("test-bucket")
    yield "test-bucket"
    proc.terminate()
    proc.wait(timeout=10)
    if old is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = old


def random_filters(targets, nb_bins=129, max_bin=100, hidden_size=8, nb_channels=2, **layer_kwargs):
    """`{target: BLSTMSpectralFilterLayer}` with random weights (variances and scales positive,
    as trained ones are), a different seed per target."""
    from umx_core import BLSTMSpectralFilterLayer

    filters = {}
    for i, target in enumerate(targets):
        layer = BLSTMSpectralFilterLayer(nb_bins=nb_bins, nb_channels=nb_channels, hidden_size=hidden_size,
                                         max_bin=max_bin, name=target, **layer_kwargs)
        layer.build((None, None, nb_bins, nb_channels))
        rng = np.random.default_rng(i)
        for w in layer.weights:
            low, high = (0.5, 1.5) if any(k in w.path for k in ("variance", "scale")) else (-0.5, 0.5)
            w.assign(rng.uniform(low, high, w.shape).astype(np.float32))
        filters[target] = layer
    return filters
