"""The installed project: its command, its metadata against the pins, the lock, Beam's sdist."""

import glob
import importlib.metadata
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.infra.conftest import load_module

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
lock = load_module(os.path.join(REPO, "requirements", "lock.py"))


def this_python():
    return "%d.%d" % sys.version_info[:2]


def supported_pythons():
    """The 3.x versions the project's Requires-Python admits."""
    spec = SpecifierSet(importlib.metadata.metadata("umx-tf")["Requires-Python"])
    return [f"3.{minor}" for minor in range(8, 20) if f"3.{minor}.0" in spec]


def requirements(python=None):
    """The installed project's requirements with all its extras, on `python` ("3.12", default: this
    one), without the project's own extras."""
    env = {"python_version": python, "python_full_version": python + ".0"} if python else {}
    out = []
    for line in importlib.metadata.requires("umx-tf"):
        req = Requirement(line)
        if canonicalize_name(req.name) != "umx-tf" and any(
                req.marker is None or req.marker.evaluate({**env, "extra": extra}) for extra in ("", "eval", "test")):
            out.append(req)
    return out


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


@pytest.mark.parametrize("python", supported_pythons())
def test_every_supported_python_has_one_pin_per_package(python):
    """Each Python that Requires-Python admits reads exactly one pin for every package it needs."""
    env = {"python_version": python, "python_full_version": python + ".0"}
    names = [canonicalize_name(r.name) for r in lock.read_pins() if r.marker is None or r.marker.evaluate(env)]
    assert sorted({n for n in names if names.count(n) > 1}) == []
    pins = lock.pins_for(lock.read_pins(), python)
    assert [req.name for req in requirements(python) if canonicalize_name(req.name) not in pins] == []


def test_the_pins_satisfy_the_ranges():
    """The versions `make venv` installs (constraints) are inside the ranges the metadata declares."""
    pins = lock.pins_for(lock.read_pins(), this_python())
    outside = [f"{req} but pinned {pins[canonicalize_name(req.name)]}" for req in requirements()
               if not req.specifier.contains(pins[canonicalize_name(req.name)], prereleases=True)]
    assert outside == []


def test_the_installed_versions_are_the_pins():
    pins = lock.pins_for(lock.read_pins(), this_python())
    installed = {canonicalize_name(d.metadata["Name"]): d.version.split("+")[0]
                 for d in importlib.metadata.distributions()}
    assert {name: installed.get(name) for name in pins if name in installed} == \
           {name: pins[name] for name in pins if name in installed}
    assert all(canonicalize_name(req.name) in installed for req in requirements())


def test_merged_pins_read_back_per_python():
    resolutions = {
        "3.10": {"numpy": "2.2.6", "six": "1.17.0", "tomli": "2.2.1", "Pillow": "11.0.0"},
        "3.11": {"numpy": "2.4.6", "six": "1.17.0", "Pillow": "12.3.0"},
        "3.12": {"numpy": "2.4.6", "six": "1.17.0", "Pillow": "11.0.0"},
        "3.13": {"numpy": "2.5.0", "six": "1.17.0", "Pillow": "11.0.0"},
    }
    lines = lock.merge(resolutions)
    assert "six==1.17.0" in lines and "tomli==2.2.1" in lines
    assert 'numpy==2.2.6; python_version < "3.11"' in lines
    assert 'numpy==2.4.6; python_version >= "3.11" and python_version < "3.13"' in lines
    assert 'Pillow==11.0.0; python_version == "3.10" or python_version == "3.12" or python_version == "3.13"' in lines
    parsed = [Requirement(line) for line in lines]
    for python, resolved in resolutions.items():
        pins = lock.pins_for(parsed, python)
        assert {name: pins[canonicalize_name(name)] for name in resolved} == resolved


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
    from apache_beam.options.pipeline_options import PipelineOptions

    dist = tmp_path / "dist"
    dist.mkdir()
    options = PipelineOptions(["--setup_file", str(src / "setup.py"), "--sdk_location", "container"])
    Stager.create_job_resources(options, str(dist), log_submission_env_dependencies=False)
    (sdist,) = glob.glob(str(dist / "*.tar.gz"))  # what Beam stages as workflow.tar.gz
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
