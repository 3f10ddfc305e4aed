"""umx_core: Open-Unmix music source separation in TensorFlow 2 / Keras 3.

The public API: `Separator`, `load_separator`, `separate_file`, `SeparationSettings`, the Keras layers and models,
`wiener`. Names are imported on first use, so `import umx_core` (and `umx --help`) does not
start TensorFlow.
"""

import importlib

from umx_core.errors import UMXError
from umx_core.version import __version__

_LAZY = {
    "BLSTMSpectralFilterLayer": "umx_core.model",
    "ComplexNorm": "umx_core.transforms",
    "ExpectationMaximization": "umx_core.filtering",
    "ISTFTLayer": "umx_core.transforms",
    "JointSpectralFilter": "umx_core.model",
    "LSTMStack": "umx_core.lstm",
    "STFTLayer": "umx_core.transforms",
    "SeparationSettings": "umx_core.settings",
    "Separator": "umx_core.separator",
    "UMX": "umx_core.umx",
    "bandwidth_to_max_bin": "umx_core.model",
    "get_joint_spectral_filter": "umx_core.model",
    "load_separator": "umx_core.pretrained",
    "separate_file": "umx_core.stream",
    "wiener": "umx_core.filtering",
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
