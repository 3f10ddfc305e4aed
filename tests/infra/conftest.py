"""Shared by the infra tests: a stand-in `gcloud`, and loading scripts that are not packages."""

import importlib.util
import os

import pytest


def load_module(path):
    """The Python file at `path` as a module (infra scripts are not importable packages)."""
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def fake_gcloud(tmp_path):
    """A stand-in `gcloud` on PATH: appends its arguments (one per line, then a blank line) to
    `calls`, copies any `--config FILE` to `calls.config` and any `--metadata-file FILE` to
    `calls.metadata`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "gcloud"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a" >> "$CALLS"; done; echo >> "$CALLS"\n'
                    'while [ $# -gt 0 ]; do [ "$1" = --config ] && cp "$2" "$CALLS.config"; '
                    '[ "$1" = --metadata-file ] && cp "$2" "$CALLS.metadata"; shift; done\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CALLS": str(tmp_path / "calls")}

    def calls():
        return [block.split("\n") for block in (tmp_path / "calls").read_text().strip("\n").split("\n\n")]

    return env, calls, tmp_path / "calls.config"
