"""The shipped demo models are what their profiles and `make demo-models` say: small, clean, current."""

import json
import os
import re

import pytest

from training import config as configuration

MODELS = os.path.join(os.path.dirname(__file__), "..", "..", "umx_core", "models")
LIMIT = 10_000_000  # bytes: issue 14 caps each shipped model at 10 MB


@pytest.mark.parametrize("name", ["demo-5stems", "demo-2stems"])
def test_shipped_model_was_trained_with_its_profile_at_a_clean_commit(name):
    folder = os.path.join(MODELS, name)
    record = json.load(open(os.path.join(folder, "separator.json")))
    trained = record["training"]
    profile = configuration.load_profile(name)
    # every hyper-parameter the profile sets is the one the shipped model was trained with, so a
    # profile changed without `make demo-models` (or a model copied from an experiment) fails here
    differing = {k: (v, trained.get(k)) for k, v in profile.items()
                 if k not in ("name", "description") and trained.get(k) != v}
    assert not differing, f"{name}: profile value, trained value: {differing}"
    assert trained["profile"] == name
    assert (record["n_fft"], record["n_hop"]) == (profile["n_fft"], profile["n_hop"])
    # a clean commit: `0.1.0+<12 hex digits>`, never `-dirty` or a bare version
    assert re.fullmatch(r"\d+\.\d+\.\d+\+[0-9a-f]{12}", record["code_version"]), record["code_version"]
    assert trained["code_version"] == record["code_version"]
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    assert size <= LIMIT, f"{name}: {size} bytes shipped, over {LIMIT}"
