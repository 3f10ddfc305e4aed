"""Training configuration: shipped profiles, overrides, errors."""

import json
import os

import pytest

from training import config as configuration
from training.train import parse_args
from umx_core.errors import UMXError


@pytest.mark.parametrize("name", ["5stems", "2stems", "demo-5stems", "demo-2stems"])
def test_shipped_profiles_resolve(name):
    config = configuration.resolve(configuration.load_profile(name))
    assert config["profile"] == name and config["code_version"]
    expected = {"5stems": ["vocals", "bass", "drums", "guitar", "other"], "2stems": ["vocals", "accompaniment"]}
    assert config["targets"] == expected[name.replace("demo-", "")]
    assert set(config) == set(configuration.DEFAULTS) | {"profile", "code_version"}


def test_flags_override_the_profile_and_unset_flags_keep_it(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"name": "mine", "hidden_size": 32, "lr": 0.01, "targets": ["a", "b"]}))
    args = parse_args(["--profile", str(path), "--output", "out", "--lr", "0.5", "--targets", "x",
                       "--channel-swap", "false", "--gain-range", "--speed-range", "0.8", "1.25"])
    config = configuration.from_args(args)
    assert config["lr"] == 0.5 and config["hidden_size"] == 32 and config["targets"] == ["x"]
    assert config["channel_swap"] is False and config["gain_range"] == [] and config["speed_range"] == [0.8, 1.25]
    assert config["batch_size"] == configuration.DEFAULTS["batch_size"][0]


def test_bad_profiles_are_named(tmp_path):
    with pytest.raises(UMXError, match="unknown profile 'nope'.*5stems"):
        configuration.load_profile("nope")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"hiden_size": 3}))
    with pytest.raises(UMXError, match=f"{os.path.basename(path)}.*unknown keys.*hiden_size"):
        configuration.load_profile(str(path))
    path.write_text("{")
    with pytest.raises(UMXError, match="bad.json: cannot read"):
        configuration.load_profile(str(path))
    with pytest.raises(UMXError, match="distinct"):
        configuration.resolve(targets=["a", "a"])
    with pytest.raises(SystemExit):
        parse_args(["--output", "o", "--channel-swap", "maybe"])
    for bad in ("1.5", "half", "maybe"):  # the boolean words are umx_core.checks'
        with pytest.raises(SystemExit):
            parse_args(["--output", "o", "--random-track-mix", bad])


@pytest.mark.parametrize("given, share", [("0.25", 0.25), ("true", 1.0), ("No", 0.0), ("1", 1.0)])
def test_track_mixing_is_a_share_on_the_command_line(given, share):
    config = configuration.from_args(parse_args(["--output", "o", "--random-track-mix", given]))
    assert config["random_track_mix"] == share


def test_resume_keeps_the_saved_run_and_takes_only_what_was_given(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"name": "mine", "hidden_size": 32, "epochs": 9}))
    given = configuration.given(parse_args(["--profile", str(path), "--output", "o", "--lr", "0.5"]))
    assert given == {"hidden_size": 32, "epochs": 9, "lr": 0.5}  # no defaults
    saved = configuration.resolve(None, hidden_size=32, lr=0.5, epochs=3, root="data")
    config = configuration.resume(saved, given, "RUN")
    assert config == {**saved, "epochs": 9}
    with pytest.raises(UMXError, match=r"--lr 0\.1: the run at RUN was trained with 0\.5.*--epochs"):
        configuration.resume(saved, {"lr": 0.1}, "RUN")
    with pytest.raises(UMXError, match=r"--targets a b: "):
        configuration.resume(saved, {"targets": ["a", "b"]}, "RUN")
    # a run saved before a key existed was trained with that key's default
    older = {k: v for k, v in saved.items() if k != "speed_range"}
    assert configuration.resume(older, {"speed_range": []}, "RUN") == older
    with pytest.raises(UMXError, match=r"--speed-range 0\.9 1\.1: the run at RUN was trained with \[\]"):
        configuration.resume(older, {"speed_range": [0.9, 1.1]}, "RUN")
