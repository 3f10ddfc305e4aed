"""umx_core: Open-Unmix music source separation in TensorFlow 2 / Keras 3.

The public API: `Separator`, `load_separator`, the Keras layers and models, `wiener`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off stderr

from umx_core.errors import UMXError  # noqa: E402
from umx_core.filtering import ExpectationMaximization, wiener  # noqa: E402
from umx_core.lstm import LSTMStack  # noqa: E402
from umx_core.model import (  # noqa: E402
    BLSTMSpectralFilterLayer,
    JointSpectralFilter,
    bandwidth_to_max_bin,
    get_joint_spectral_filter,
)
from umx_core.pretrained import load_separator  # noqa: E402
from umx_core.separator import Separator  # noqa: E402
from umx_core.transforms import ComplexNorm, ISTFTLayer, STFTLayer  # noqa: E402
from umx_core.umx import UMX  # noqa: E402
from umx_core.version import __version__  # noqa: E402


__all__ = [
    "BLSTMSpectralFilterLayer",
    "ComplexNorm",
    "ExpectationMaximization",
    "ISTFTLayer",
    "JointSpectralFilter",
    "LSTMStack",
    "STFTLayer",
    "Separator",
    "UMX",
    "UMXError",
    "__version__",
    "bandwidth_to_max_bin",
    "get_joint_spectral_filter",
    "load_separator",
    "wiener",
]
