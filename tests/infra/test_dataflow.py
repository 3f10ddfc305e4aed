"""The flex template's metadata and image against the pipeline's options and the pins."""

import argparse
import json
import os
import re

import pytest

from pipelines.catalog import CatalogOptions

INFRA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "infra", "dataflow")


def option_names():
    parser = argparse.ArgumentParser()
    CatalogOptions._add_argparse_args(parser)
    return {a.dest for a in parser._actions if a.dest != "help"}


@pytest.fixture(scope="module")
def metadata():
    with open(os.path.join(INFRA, "metadata.json")) as f:
        return json.load(f)


def test_template_parameters_are_the_pipeline_options(metadata):
    names = [p["name"] for p in metadata["parameters"]]
    assert len(names) == len(set(names)) and set(names) == option_names()
    assert [p["name"] for p in metadata["parameters"] if not p["isOptional"]] == ["output"]
    for p in metadata["parameters"]:
        assert p["label"] and p["helpText"] and p["regexes"], p["name"]


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
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(["--residual=true", "--softmask=false", "--overwrite"]).view_as(CatalogOptions)
    assert (options.residual, options.softmask, options.overwrite) == (True, False, True)


def test_image_takes_its_versions_from_the_pins():
    text = open(os.path.join(INFRA, "Dockerfile")).read()
    assert "ARG BEAM_VERSION" in text and "ARG TENSORFLOW_VERSION" in text
    assert not re.search(r"\b2\.(77|21)\.\d", text), "a pinned version repeated by hand"
    assert "FLEX_TEMPLATE_PYTHON_PY_FILE=/opt/umx/infra/dataflow/launcher.py" in text


def test_scripts_parse_and_pass_only_pipeline_or_beam_options():
    import subprocess

    for script in ("build.sh", "run.sh"):
        subprocess.run(["bash", "-n", os.path.join(INFRA, script)], check=True)
    text = open(os.path.join(INFRA, "run.sh")).read()
    passed = {item.split("=")[0] for value in re.findall(r'--parameters "([^"]*)"', text) for item in value.split(",")}
    assert {"input", "output", "model", "codec"} <= passed
    beam = {"sdk_container_image", "dataflow_service_options"}
    assert passed <= option_names() | beam, passed - option_names() - beam
    assert "nvidia-tesla-t4" in text and "nvidia-l4" in text
