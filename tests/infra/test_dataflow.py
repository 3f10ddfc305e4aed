"""The flex template's metadata and image against the pipeline's options and the pins."""

import json
import os
import re

import pytest

from tests.infra.conftest import load_module

from pipelines.options import build_parser
from pipelines.template import template_metadata

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INFRA = os.path.join(REPO, "infra", "dataflow")


@pytest.fixture(scope="module")
def metadata():
    return template_metadata()


def test_template_parameters_are_labelled_and_the_output_is_required(metadata):
    names = [p["name"] for p in metadata["parameters"]]
    assert len(names) == len(set(names))
    assert [p["name"] for p in metadata["parameters"] if not p["isOptional"]] == ["output"]
    for p in metadata["parameters"]:
        assert p["label"] and p["helpText"] and p["regexes"], p["name"]


def test_the_metadata_command_needs_nothing_installed(tmp_path):
    """build.sh runs `python -m pipelines.template` on the machine that builds the template: the
    standard library and the repository alone (no TensorFlow, no Beam) must do."""
    import subprocess
    import sys

    code = ("import sys, runpy; sys.modules.update(dict.fromkeys(['apache_beam', 'tensorflow', 'keras', 'numpy', "
            "'soundfile', 'google'])); runpy.run_module('pipelines.template', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": REPO})
    assert json.loads(done.stdout) == template_metadata()


@pytest.mark.parametrize("name,good,bad", [
    ("output", "gs://bucket/stems", "/local/path"),
    ("codec", "flac", "aiff"),
    ("model", "umxl", "nonsense"),
    ("residual", "true", "yes please"),
    ("input", "gs://b/a/**/*.mp3,gs://b/c/*.wav", "gs://b/a,/local"),
    ("aggregate", '{"vocals": ["vocals"]}', "vocals"),
])
def test_regexes_accept_and_refuse(metadata, name, good, bad):
    (param,) = [p for p in metadata["parameters"] if p["name"] == name]
    assert all(re.fullmatch(r, good) for r in param["regexes"])
    assert not all(re.fullmatch(r, bad) for r in param["regexes"])


def test_template_style_boolean_flags_parse():
    options = build_parser().parse_args(["--residual=true", "--softmask=false", "--overwrite"])
    assert (options.residual, options.softmask, options.overwrite) == (True, False, True)


def test_image_takes_its_versions_from_the_pins():
    """The Dockerfile names no version of Beam or TensorFlow itself: build.sh passes the pins."""
    text = open(os.path.join(INFRA, "Dockerfile")).read()
    assert "ARG BEAM_VERSION" in text and "ARG TENSORFLOW_VERSION" in text
    lock = load_module(os.path.join(REPO, "requirements", "lock.py"))
    pinned = {spec.version for req in lock.read_pins() if req.name in ("apache-beam", "tensorflow")
              for spec in req.specifier}
    assert len(pinned) >= 2
    for version in pinned:
        assert not re.search(rf"(?<![\d.]){re.escape(version)}(?!\d)", text), f"{version} repeated by hand"
    assert "FLEX_TEMPLATE_PYTHON_PY_FILE=/opt/umx/infra/dataflow/launcher.py" in text


def test_image_copies_what_the_project_install_reads():
    """`pip install .` in the image builds from the metadata (pyproject.toml, its readme) and setup.py."""
    text = open(os.path.join(INFRA, "Dockerfile")).read()
    copied = {source for line in text.splitlines() if line.startswith("COPY ") and "--from=" not in line
              for source in line.split()[1:-1]}
    assert {"pyproject.toml", "setup.py", "README.md", "requirements", "umx_core", "training", "pipelines"} <= copied


def beam_service_options(assignments):
    """What Beam makes of `name=value` pipeline options, as the launcher VM passes them on."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    options = PipelineOptions([f"--{a}" for a in assignments])
    known = options.get_all_options()
    assert all(a.split("=", 1)[0] in known for a in assignments), assignments
    return options.view_as(GoogleCloudOptions).dataflow_service_options


def test_scripts_parse():
    import subprocess

    for script in ("build.sh", "run.sh"):
        subprocess.run(["bash", "-n", os.path.join(INFRA, script)], check=True)


def load_launcher():
    return load_module(os.path.join(INFRA, "launcher.py"))


def test_launcher_hands_its_own_image_to_the_workers():
    launcher = load_launcher()
    image = "europe-docker.pkg.dev/p/umx/worker:abc"
    argv = ["--input=gs://b/a/*.wav", "--output=gs://b/stems"]
    assert launcher.with_worker_image(argv, {"UMX_WORKER_IMAGE": image}) == [*argv, f"--sdk_container_image={image}"]
    given = [*argv, "--sdk_container_image=other:1"]
    assert launcher.with_worker_image(given, {"UMX_WORKER_IMAGE": image}) == given
    assert launcher.with_worker_image(argv, {}) == argv


def test_launcher_submits_without_waiting(monkeypatch):
    """A flex-template launcher must exit once the job is submitted: it never waits for the job."""
    import runpy
    import sys

    import apache_beam as beam

    class Submitted:
        def wait_until_finish(self, duration=None):
            raise AssertionError("the launcher waited for the job")

    monkeypatch.setattr(beam.Pipeline, "run", lambda self, test_runner_api="AUTO": Submitted())
    monkeypatch.setattr(sys, "argv", ["launcher.py", "--input=gs://b/a/*.wav", "--output=gs://b/stems"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(os.path.join(INFRA, "launcher.py"), run_name="__main__")
    assert done.value.code == 0


def test_launcher_runs_the_catalog_job(tmp_path):
    """The launcher file as Dataflow runs it (a script, outside the repository), on DirectRunner."""
    import subprocess
    import sys

    import numpy as np
    import soundfile as sf

    repo = os.path.dirname(os.path.dirname(INFRA))
    sf.write(str(tmp_path / "song.wav"), np.random.default_rng(0).standard_normal((22050, 2)) * 0.1, 44100)
    env = {**os.environ, "PYTHONPATH": repo, "UMX_WORKER_IMAGE": "img:1", "CUDA_VISIBLE_DEVICES": "",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, os.path.join(INFRA, "launcher.py"), f"--input={tmp_path}/*.wav",
                           f"--output={tmp_path}/stems", "--model=demo-2stems", "--codec=wav"],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / "stems" / "song")) == ["accompaniment.wav", "separation.json", "vocals.wav"]


def test_build_script_builds_with_the_pinned_versions(fake_gcloud):
    import subprocess

    env, calls, config = fake_gcloud
    subprocess.run([os.path.join(INFRA, "build.sh"), "proj", "us-central1", "bkt", "v1"], env=env, check=True,
                   capture_output=True)
    lock = load_module(os.path.join(os.path.dirname(os.path.dirname(INFRA)), "requirements", "lock.py"))
    (python,) = re.findall(r"^ARG PYTHON_VERSION=(\S+)$", open(os.path.join(INFRA, "Dockerfile")).read(), re.M)
    pins = lock.pins_for(lock.read_pins(), python)  # the pins for the image's Python
    text = config.read_text()
    image = "us-central1-docker.pkg.dev/proj/umx/worker:v1"
    for arg in (f"BEAM_VERSION={pins['apache-beam']}", f"TENSORFLOW_VERSION={pins['tensorflow']}",
                f"WORKER_IMAGE={image}"):
        assert arg in text, arg
    build, template = calls()
    assert build[:2] == ["builds", "submit"]
    assert template[:3] == ["dataflow", "flex-template", "build"] and image in template
    assert json.loads(config.with_name("calls.metadata").read_text()) == template_metadata()


@pytest.mark.parametrize("gpu,machine,accelerator", [("t4", "n1-standard-8", "nvidia-tesla-t4"),
                                                     ("l4", "g2-standard-8", "nvidia-l4"),
                                                     ("cpu", "n2d-standard-2", None)])
def test_run_script_launch_passes_the_metadata_regexes(fake_gcloud, metadata, gpu, machine, accelerator):
    import subprocess

    env, calls, _ = fake_gcloud
    subprocess.run([os.path.join(INFRA, "run.sh"), "proj", "us-central1", "bkt", gpu,
                    "gs://cat/**/*.flac,gs://cat/new/*.mp3", "umxl", "25"], check=True, capture_output=True,
                   env={**env, "UMX_PARAMETERS": "batch_frames=4800~batch_seconds=1800"})
    (call,) = calls()
    assert call[:3] == ["dataflow", "flex-template", "run"]
    flag = {call[k]: call[k + 1] for k in range(3, len(call) - 1) if call[k].startswith("--")}
    assert flag["--worker-machine-type"] == machine and flag["--max-workers"] == "25"
    assert flag["--parameters"].startswith("^~^")  # gcloud's own delimiter: commas stay in the input globs
    parameters = dict(item.split("=", 1) for item in flag["--parameters"][3:].split("~"))
    assert parameters["input"] == "gs://cat/**/*.flac,gs://cat/new/*.mp3"
    assert (parameters["batch_frames"], parameters["batch_seconds"]) == ("4800", "1800")
    regexes = {p["name"]: p["regexes"] for p in metadata["parameters"]}
    for name, value in parameters.items():
        assert all(re.fullmatch(r, value) for r in regexes[name]), (name, value)
    if gpu == "cpu":  # no accelerator, and Dataflow's default of one SDK process per vCPU
        assert "--additional-pipeline-options" not in flag and "--additional-experiments" not in flag
    else:
        assert flag["--additional-experiments"] == "no_use_multiple_sdk_containers"
        services = beam_service_options([flag["--additional-pipeline-options"]])
        assert services == [f"worker_accelerator=type:{accelerator};count:1;install-nvidia-driver"]
