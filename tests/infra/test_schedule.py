"""The scheduled-job Terraform parses and launches the template with the pipeline's parameters."""

import json
import os
import re

import hcl2

from pipelines.options import TABLE
from tests.infra.test_dataflow import INFRA, beam_service_options

SCHEDULE = os.path.join(os.path.dirname(INFRA), "schedule")


def load(name):
    with open(os.path.join(SCHEDULE, name)) as f:
        return hcl2.load(f)


def unquote(text):
    return text.strip('"')


def resources():
    return {(unquote(kind), unquote(name)): body for block in load("main.tf")["resource"]
            for kind, named in block.items() for name, body in named.items()}


def test_terraform_parses_and_launches_the_flex_template():
    declared = {unquote(name) for block in load("variables.tf")["variable"] for name in block}
    job = resources()[("google_cloud_scheduler_job", "catalog")]
    (target,) = job["http_target"]
    assert unquote(target["uri"]).endswith("/flexTemplates:launch") and target["oauth_token"]
    body = target["body"]
    parameters = re.search(r"parameters = merge\(\{(.*?)\}, var\.parameters\), environment", body).group(1)
    passed = {item.split("=")[0].strip() for item in parameters.split(",")}
    assert passed == {"input", "output", "model", "codec"} and passed <= {n for n, s in TABLE.items() if "job" in s.commands}
    assert "serviceAccountEmail" in body
    # the GPU, as the pipeline option Beam knows, with the default accelerator filled in
    (extra,) = re.findall(r'additionalPipelineOptions = var.accelerator == "" \? \[\] : \["([^"]*)"\]', body)
    assert 'additionalExperiments = var.accelerator == "" ? [] : ["no_use_multiple_sdk_containers"]' in body
    (default,) = [b["default"] for block in load("variables.tf")["variable"] for name, b in block.items()
                  if unquote(name) == "accelerator"]
    services = beam_service_options([extra.replace("${var.accelerator}", unquote(default))])
    assert services == ["worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"]
    used = set(re.findall(r"var\.([a-z_]+)", json.dumps(load("main.tf"))))
    assert used and used <= declared, used - declared


def test_least_privilege_roles():
    roles = sorted(unquote(body["role"]) for body in resources().values() if "role" in body)
    assert roles == sorted(["roles/dataflow.developer", "roles/iam.serviceAccountUser", "roles/storage.objectViewer",
                            "roles/dataflow.worker", "roles/storage.objectViewer", "roles/storage.objectAdmin",
                            "roles/artifactregistry.reader"])
