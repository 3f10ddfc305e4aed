"""umx-tf: Open-Unmix music source separation in TensorFlow 2 / Keras 3, with Beam catalog jobs.

This file is what Beam's --setup_file and the Dataflow workers install, so the runtime
dependencies below are the real, pinned ones. requirements/constraints.txt pins the
whole resolved set (transitive dependencies included) for `make venv`.
"""

from setuptools import find_packages, setup

RUNTIME = [
    "tensorflow==2.21.0",
    "keras==3.15.1",
    "apache-beam[gcp]==2.77.0",
    "google-cloud-storage==3.17.1",
    "soundfile==0.14.0",
    "soxr==1.1.0",
    "numpy==2.4.6",
    # training: TensorBoard summaries (tf.summary needs the package; TF does not pull it in)
    "tensorboard==2.21.0",
    # training.render: MIDI for the fluidsynth-rendered demo datasets
    "mido==1.3.3",
]

# `python -m training.evaluate`: BSS Eval v4 and the SDR plot.
EVAL = [
    "museval==0.4.1",
    "matplotlib==3.11.2",
]

# `python -m training.synthesize --renderer fluidsynth`: effects on the rendered stems and the voice
RENDER = [
    "pedalboard==0.9.26",
    "scipy==1.17.1",
]

# Test references. The `openunmix` package is installed by the Makefile with --no-deps:
# its torchaudio dependency has no CPU build here, and the tests stub that import.
TEST = [
    "pytest==9.2.0",
    "torch==2.13.0",
    "norbert==0.2.1",
    "gcp-storage-emulator==2026.7.19",
    "scipy==1.17.1",
    # API documentation (make docs) and its test
    "pdoc==16.0.0",
    # parses the Terraform under infra/ in the tests
    "python-hcl2==8.1.4",
] + EVAL + RENDER

setup(
    name="umx-tf",
    version="0.1.0",
    description="Open-Unmix source separation in TensorFlow 2 / Keras 3 with EM refinement and Beam catalog jobs",
    packages=find_packages(include=["umx_core", "umx_core.*", "training", "training.*", "pipelines", "pipelines.*"]),
    python_requires=">=3.11,<3.12",
    install_requires=RUNTIME,
    extras_require={"test": TEST, "eval": EVAL, "render": RENDER},
    package_data={"training": ["profiles/*.json"], "umx_core": ["models/*/*", "models/*/*/*"]},
    entry_points={"console_scripts": ["umx=umx_core.cli:main"]},
    license="MIT",
)
