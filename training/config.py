"""Training configuration: defaults, shipped profiles, CLI overrides.

A configuration is one flat JSON object; every key has a default below (open-unmix's
`train.py` defaults unless noted), a profile (`training/profiles/NAME.json` or a path)
overrides some, and command-line flags (`--hidden-size 128`) override the profile. The
resolved configuration is written beside every checkpoint and export with the code version,
so a run can be continued or its model rebuilt from it alone. A resumed run is its saved
configuration; only the keys the user gives (flags, or a profile's keys) and `RESUMABLE` lists
change it (`resume`).
"""

import argparse
import json
import os

from umx_core import storage
from umx_core.checks import check_bool
from umx_core.errors import UMXError
from umx_core.settings import N_FFT, N_HOP
from umx_core.cli.flags import parse_bool
from umx_core.version import code_version

PROFILE_DIR = os.path.join(os.path.dirname(__file__), "profiles")

# key: (default, help). Types come from the defaults; None-defaults name their type in _TYPES.
DEFAULTS = {
    "targets": (["vocals"], "target names; each sample folder holds one file per target"),
    "interferers": (None, "stems summed into the mixture but not estimated (default: every other stem "
                          "in the sample folders; none: pass the flag without names)"),
    "root": (None, "dataset root with train/ and valid/ (local or gs://)"),
    "seq_duration": (6.0, "training excerpt length, seconds"),
    "samples_per_track": (64, "training excerpts per track per epoch"),
    "random_track_mix": (0.0, "share of training excerpts (0-1; true is 1) whose stems each come from an "
                                "independent track and start; the rest are one track's stems, as mixed"),
    "gain_range": ([0.25, 1.25], "per-target random gain range; [] disables"),
    "channel_swap": (True, "swap stereo channels of a target with probability 0.5"),
    "speed_range": ([], "per-source random playback speed range (LOW HIGH, resampled: pitch and tempo "
                        "move together; 0.8 1.25 is about four semitones either way); [] disables"),
    "sample_rate": (44100, "sample rate every file must have"),
    "valid_seconds": (None, "validation chunk length, seconds (None: whole tracks)"),
    "n_fft": (N_FFT, "STFT size"),
    "n_hop": (N_HOP, "STFT hop"),
    "hidden_size": (512, "BLSTM filter width"),
    "nb_layers": (3, "LSTM layers"),
    "nb_channels": (2, "audio channels the model takes"),
    "bandwidth": (16000, "highest frequency (Hz) the network looks at"),
    "unidirectional": (False, "forward-only (causal) LSTM"),
    "bridge": (False, "cross the targets' filters as X-UMX does (the mean of their encodings into every LSTM, "
                      "the mean of their features into every decoder)"),
    "combination_loss": (False, "X-UMX's combination loss: the MSE of every set of 1 to N-1 targets' summed "
                                "estimates, averaged, instead of the targets' MSEs summed"),
    "time_loss_weight": (0.0, "weight of X-UMX's time-domain weighted-SDR loss (over the same sets) added to the "
                              "spectrogram loss: the multi-domain loss (X-UMX: 10); 0 disables it"),
    "epochs": (1000, "maximum epochs"),
    "steps_per_epoch": (None, "optimizer steps per epoch (None: every excerpt once)"),
    "batch_size": (16, "global batch size, split over replicas"),
    "lr": (0.001, "Adam learning rate"),
    "weight_decay": (0.00001, "L2 weight decay added to the gradient, as torch Adam"),
    "patience": (140, "early stopping: epochs without validation improvement"),
    "lr_decay_patience": (80, "LR decay: epochs without improvement before decaying"),
    "lr_decay_gamma": (0.3, "LR decay factor"),
    "lr_decay_cooldown": (10, "LR decay: epochs to wait after a decay (open-unmix: 10)"),
    "jit_compile": (True, "compile each training step's forward and backward pass with XLA (faster; "
                           "dropout masks are then not seeded)"),
    "seed": (42, "seed of the data stream and the initial weights"),
    "checkpoint_steps": (500, "write the latest checkpoint every N optimizer steps (and every epoch)"),
    "sync_seconds": (300.0, "copy the local run folder to a gs:// output at most this often"),
    "audio_examples": (2, "validation tracks logged as audio to TensorBoard each epoch"),
    "audio_seconds": (8.0, "seconds of each audio example"),
}
# What a resumed run may change: where the data is, how long it goes on, its schedules and its
# bookkeeping. Everything else (the model's shapes, the data stream, the optimizer) is the run itself.
RESUMABLE = ("root", "jit_compile", "epochs", "patience", "lr_decay_patience", "lr_decay_gamma", "lr_decay_cooldown",
             "checkpoint_steps", "sync_seconds", "audio_examples", "audio_seconds")


def _share(text):
    """A share between 0 and 1 from the command line; the boolean words (true, false, ...) mean 1 and 0."""
    try:
        return float(check_bool(text))
    except ValueError:
        pass  # not a boolean word: a number
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1 (or true/false), got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text!r}")
    return value


_TYPES = {"root": str, "valid_seconds": float, "steps_per_epoch": int, "random_track_mix": _share}
_LISTS = {"targets": str, "interferers": str, "gain_range": float, "speed_range": float}


def load_profile(name_or_path):
    """A profile dict: a shipped name (`5stems`, `2stems`, `demo-5stems`, ...) or a JSON path."""
    path = name_or_path
    if not (name_or_path.endswith(".json") or storage.is_gcs(name_or_path)):
        path = os.path.join(PROFILE_DIR, f"{name_or_path}.json")
        if not os.path.exists(path):
            shipped = sorted(f[:-5] for f in os.listdir(PROFILE_DIR) if f.endswith(".json"))
            raise UMXError(f"unknown profile {name_or_path!r}; shipped profiles: {', '.join(shipped)}")
    try:
        profile = json.loads(storage.read_bytes(path))
    except (OSError, json.JSONDecodeError, UMXError) as exc:
        raise UMXError(f"{path}: cannot read the profile ({exc})") from exc
    unknown = sorted(set(profile) - set(DEFAULTS) - {"name", "description", "code_version"})
    if unknown:
        raise UMXError(f"{path}: unknown keys {unknown}")
    return profile


def resolve(profile=None, **overrides):
    """Defaults <- profile <- overrides (None values in overrides are ignored)."""
    config = {key: default for key, (default, _) in DEFAULTS.items()}
    config.update({k: v for k, v in (profile or {}).items() if k in DEFAULTS})
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise UMXError(f"unknown configuration keys {unknown}")
    config.update({k: v for k, v in overrides.items() if v is not None})
    config["targets"] = list(config["targets"])
    if not config["targets"] or len(set(config["targets"])) != len(config["targets"]):
        raise UMXError(f"targets must be distinct names, got {config['targets']}")
    config["gain_range"] = list(config["gain_range"] or [])
    config["speed_range"] = list(config["speed_range"] or [])
    config["profile"] = (profile or {}).get("name")
    config["code_version"] = code_version()
    return config


def flag(key):
    """The command-line flag of a configuration key (`hidden_size` -> `--hidden-size`)."""
    return "--" + key.replace("_", "-")


def add_arguments(parser):
    """One `--flag` per configuration key, defaulting to None (= keep the profile's value)."""
    group = parser.add_argument_group("configuration (overrides the profile)")
    for key, (default, help_text) in DEFAULTS.items():
        kind = _TYPES.get(key, type(default))
        if key in _LISTS:
            group.add_argument(flag(key), nargs="*", type=_LISTS[key], default=None, help=help_text)
        elif kind is bool:
            group.add_argument(flag(key), type=parse_bool, default=None, metavar="BOOL",
                               help=f"{help_text} (default {default})")
        else:
            group.add_argument(flag(key), type=kind, default=None, help=f"{help_text} (default {default})")


def from_args(args):
    """The resolved configuration from parsed arguments (`--profile` and the override flags)."""
    profile = load_profile(args.profile) if args.profile else None
    return resolve(profile, **{key: getattr(args, key) for key in DEFAULTS})


def given(args):
    """Only the configuration the user gave: the profile's keys, then the flags passed (no defaults)."""
    profile = load_profile(args.profile) if args.profile else {}
    values = {key: value for key, value in profile.items() if key in DEFAULTS}
    values.update({key: getattr(args, key) for key in DEFAULTS if getattr(args, key) is not None})
    return values


def resume(saved, changes, source):
    """The configuration of a resumed run: `saved`, with the `changes` that `RESUMABLE` allows.

    A change to any other key must repeat the saved value (a restarted job repeats its whole
    command); a different one is a UMXError naming the flag. None values are ignored.
    """
    config = dict(saved)
    for key, value in changes.items():
        if key not in DEFAULTS or value is None:
            continue
        if key in RESUMABLE:
            config[key] = value
            continue
        trained = saved.get(key, DEFAULTS[key][0])  # a key newer than the run: the run had its default
        if _normal(value) != _normal(trained):
            shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            raise UMXError(f"{flag(key)} {shown}: the run at {source} was trained with {trained!r}, and a "
                           f"resumed run keeps it; resuming can change only "
                           f"{', '.join(map(flag, RESUMABLE))} (train another --output to change the rest)")
    return config


def _normal(value):
    return list(value) if isinstance(value, (list, tuple)) else value
