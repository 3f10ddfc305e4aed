"""The installed project: its command, and what Beam stages."""

import glob
import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import sys

from packaging.requirements import Requirement

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def test_the_umx_command_beside_python_is_ours(monkeypatch):
    """`umx` in the environment's bin/ is this project's command (issue #12: the open-unmix
    reference, installed afterwards, replaced it with one that dies on `import torchaudio`)."""
    from umx_core.cli import build_parser

    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps the help to the terminal's width
    done = subprocess.run([os.path.join(BIN, "umx"), "--help"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "100"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == build_parser().format_help()


def test_no_command_of_the_environment_runs_the_reference():
    def runs_openunmix(path):
        with open(path, "rb") as f:
            return b"openunmix" in f.read(4096)

    scripts = [name for name in os.listdir(BIN) if os.path.isfile(os.path.join(BIN, name))]
    assert [name for name in scripts if runs_openunmix(os.path.join(BIN, name))] == []


def test_the_reference_is_importable():
    from openunmix.model import OpenUnmix

    assert OpenUnmix.__module__ == "openunmix.model"


def test_beam_stages_an_sdist_that_installs(tmp_path):
    """What Beam does with --setup_file when no worker image is given: build an sdist of the folder
    of setup.py, which the workers install. The install must hold the packages, their data, the
    `umx` command and the dependency ranges."""
    from apache_beam.runners.portability.stager import Stager

    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(REPO, name), src / name)
    for package in ("umx_core", "training", "pipelines"):
        shutil.copytree(os.path.join(REPO, package), src / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    sdist = Stager._build_setup_package(str(src / "setup.py"), str(tmp_path / "dist"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
                    "--target", str(site), sdist], check=True, capture_output=True, timeout=300)
    for package in ("umx_core", "training", "pipelines"):
        expected = {os.path.relpath(p, src) for p in glob.glob(str(src / package / "**" / "*"), recursive=True)
                    if os.path.isfile(p)}
        installed = {os.path.relpath(p, site) for p in glob.glob(str(site / package / "**" / "*"), recursive=True)
                     if os.path.isfile(p) and "__pycache__" not in p}
        assert expected - installed == set(), package
    assert "umx_core.cli" in (site / "bin" / "umx").read_text()
    (dist_info,) = glob.glob(str(site / "umx_tf-*.dist-info"))
    requires = importlib.metadata.PathDistribution(pathlib.Path(dist_info)).requires
    declared = {str(Requirement(line)) for line in requires}
    assert declared == {str(Requirement(line)) for line in importlib.metadata.requires("umx-tf")}
