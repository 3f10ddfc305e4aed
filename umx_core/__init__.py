"""umx_core: Open-Unmix music source separation in TensorFlow 2 / Keras 3.

The public API: `Separator`, `load_separator`, `separate_file`, `SeparationSettings`, the Keras layers and models,
`wiener`. Names are imported on first use, so `import umx_core` (and `umx --help`) does not
start TensorFlow.
"""

import importlib

from umx_core.errors import UMXError
from umx_core.version import __version__

_LAZY = {
    "BLSTMSpectralFilterLayer": "umx_core.nn.spectral_filter",
    "ComplexNorm": "umx_core.nn.transforms",
    "ExpectationMaximization": "umx_core.nn.filtering",
    "ISTFTLayer": "umx_core.nn.transforms",
    "JointSpectralFilter": "umx_core.nn.model",
    "LSTMStack": "umx_core.nn.lstm",
    "STFTLayer": "umx_core.nn.transforms",
    "SeparationSettings": "umx_core.settings",
    "Separator": "umx_core.separator",
    "UMX": "umx_core.nn.umx",
    "bandwidth_to_max_bin": "umx_core.nn.spectral_filter",
    "get_joint_spectral_filter": "umx_core.nn.model",
    "load_separator": "umx_core.pretrained",
    "Result": "umx_core.stream",
    "separate_file": "umx_core.stream",
    "separate_files": "umx_core.stream",
    "wiener": "umx_core.nn.filtering",
}

__all__ = sorted([*_LAZY, "UMXError", "__version__"])


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'umx_core' has no attribute {name!r}")


def __dir__():
    return __all__
