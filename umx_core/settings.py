"""Every setting of a separation and of the commands, declared once: type, default, choices, check, help.

`SETTINGS` is the table. From it, and from nothing else:
- `SeparationSettings`, the validated settings of one run (its fields are the table's
  separation rows), which the `Separator` (through `load_separator`), `umx` and the catalog job use;
- the flags of `umx` (`--wiener-win-len`, open-unmix's names) and of the catalog job
  (`--wiener_win_len`, Beam style), which `umx_core.cli.flags` writes;
- the flex template's parameters (`pipelines.template` derives each one's regex from its row's check).
A new setting is a row here and the code that uses it. Run knobs (`batch_frames`, `precision`:
memory against speed) are settings of a run, never saved with a model.
"""

import contextlib
import dataclasses

from umx_core.checks import Number, OneOf, Whole, check_bool, check_targets, parse_aggregate
from umx_core.errors import UMXError

# stem codecs: soundfile format and subtype. WAV stays float (stems may exceed full scale).
CODECS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24"), "mp3": ("MP3", "MPEG_LAYER_III"),
          "ogg": ("OGG", "VORBIS")}
PRECISIONS = ("float32", "bfloat16")
RUNTIMES = ("xla", "openvino")  # where the network runs (umx_core.engine)
# frames per network call on a CPU when nothing says otherwise (docs/benchmarks.md: memory against speed)
CPU_BATCH_FRAMES = 2400
N_FFT, N_HOP = 4096, 1024  # open-unmix's STFT: every default STFT size and hop in the project is this one
_SAME = object()  # "the same as the field's default"


class SettingError(UMXError):
    """A setting with a bad value; `field` names it, so each command can say its own flag."""

    def __init__(self, field, problem):
        super().__init__(f"{field} {problem}")
        self.field, self.problem = field, problem


def check_aggregate(aggregate, sources):
    """SettingError when `aggregate` names a source that `sources` (a separator's stems) does not hold."""
    unknown = sorted({s for parts in (aggregate or {}).values() for s in parts} - set(sources))
    if unknown:
        raise SettingError("aggregate", f"names sources the model does not give: {unknown} (it gives {list(sources)})")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One setting: its value's type, default, choices, check and help, and how each command spells it.

    Args:
        type: the value's type on a command line (bool, int, float, str).
        check: `value -> normalised value`, raising ValueError with the problem (`umx_core.checks`:
            its bounds are its fields, which the flex template's patterns are derived from).
        commands: `{command: argparse overrides}` for "umx" and "job" (the flag's own name,
            `nargs`, `const`, `action`, `help_prefix`); a command not named does not have it.
        job_default: the job's default where it differs from `default`.
        required: the command cannot run without it (the command says so, with its other problems).
        separation: a field of `SeparationSettings`; `separator`: a keyword of `load_separator`;
        stems: changes the stems written, so a track's record names it (left out while at
        `omitted_at`, so records written before the setting existed stay valid).
    """

    name: str
    help: str
    default: object = None
    type: type = str
    choices: tuple = None
    check: object = None
    commands: dict = dataclasses.field(default_factory=lambda: {"umx": {}, "job": {}})
    job_default: object = _SAME
    required: bool = False
    separation: bool = False
    separator: bool = False
    stems: bool = False
    omitted_at: object = _SAME

    def default_for(self, command):
        """The default `command` ("umx" or "job") starts from."""
        return self.default if command != "job" or self.job_default is _SAME else self.job_default

    def flag(self, command):
        """The command-line spelling: `--wiener-win-len` for "umx", `--wiener_win_len` for "job"."""
        own = self.commands.get(command, {}).get("flag")
        return own or "--" + (self.name.replace("_", "-") if command == "umx" else self.name)

    def help_text(self, command):
        """The help `command` shows, with the default it starts from."""
        text = self.commands.get(command, {}).get("help_prefix", "") + self.help
        default = self.default_for(command)
        if self.required:
            return f"{text} (required)"
        return text if default is None or default is False or default == [] else f"{text} (default: {default})"


def _separation(name, help, default=None, type=str, stems=True, separator=True, **more):
    return Setting(name, help, default, type, separation=True, stems=stems, separator=separator, **more)


SETTINGS = {s.name: s for s in [
    # which model: the one setting every command starts from
    Setting("model", "model name (umx --list-models), or a saved separator, training run folder or model file, "
                     "local or gs://", "demo-5stems"),
    # what a separation is: every entry point (API, umx, the job, the flex template) reads these
    _separation("targets", "targets to separate (default: all the model's targets; a bridged model computes "
                           "every target and writes these)", check=check_targets,
                commands={"umx": {"nargs": "+"}, "job": {"help_prefix": "comma-separated "}}),
    _separation("niter", "EM (Wiener) iterations; 0 disables the refinement", 1, int, check=Whole(0)),
    _separation("softmask", "ratio-mask initial estimates for EM (instead of magnitudes with the mixture phase)",
                False, bool, check=check_bool),
    # umx's --residual NAME names the stem too (umx_core.cli.main); the setting says whether there is one
    _separation("residual", "add a stem for the mixture minus the targets", False, bool, check=check_bool,
                commands={"umx": {"nargs": "?", "const": "residual", "metavar": "NAME", "type": str,
                                  "help_suffix": " (named NAME, default 'residual')"}, "job": {}}),
    _separation("wiener_win_len", "STFT frames per independent EM window", 300, int, check=Whole(1, optional=True)),
    # waveform models' (HTDemucs): how demucs's apply_model splits and shifts a track
    _separation("overlap", "waveform models (htdemucs): the part of each segment shared with the next", 0.25, float,
                check=Number(0.0, 0.95)),
    _separation("shifts", "waveform models (htdemucs): runs of the track, each delayed by up to half a second of "
                          "silence (the same delays on every run of a track), averaged; 0: one undelayed run",
                1, int, check=Whole(0)),
    _separation("aggregate", 'JSON {"stem": ["source", ...]} of the stems to write, e.g. '
                             '\'{"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]}\'',
                check=parse_aggregate, separator=False),
    _separation("codec", "stem format: wav (float), flac (24 bit), mp3 or ogg", "wav", choices=tuple(CODECS),
                check=OneOf(tuple(CODECS), lambda v: str(v).lstrip(".").lower()), separator=False,
                commands={"umx": {"flag": "--ext", "choices": None, "help_suffix": "; a leading dot is accepted"},
                          "job": {}},
                job_default="flac"),
    _separation("batch_frames", "STFT frames per network call: memory against speed (default: from the device: "
                                f"as many as half a GPU's memory holds, {CPU_BATCH_FRAMES} on a CPU)", None, int,
                check=Whole(1, optional=True), stems=False),
    _separation("precision", "the network's arithmetic: float32, or bfloat16 for accelerators with fast bfloat16 "
                             "matmuls (STFT and EM stay float32)", "float32", choices=PRECISIONS,
                check=OneOf(PRECISIONS), omitted_at="float32"),
    _separation("runtime", "where the network runs: xla (TensorFlow, on the CPU or a GPU) or openvino (OpenVINO on "
                           "the CPU; pip install 'umx-tf[openvino]'); STFT and EM stay in TensorFlow", "xla",
                choices=RUNTIMES, check=OneOf(RUNTIMES), stems=False),
    # what the job and `umx --stats` measure of each stem (umx_core.analytics), not the stems themselves
    _separation("analytics", "measure each stem while it is written: loudness, peaks, where it is audible, vocal "
                             "segments (into each track's record and the run's manifest)", True, bool,
                check=check_bool, stems=False, separator=False, commands={"job": {}}),
    _separation("audible_db", "a stem is audible in a 400 ms block when it is at most this many dB below the mixture "
                              "(and above --audible-floor)", 12.0, float, check=Number(0.0), stems=False,
                separator=False),
    _separation("audible_floor", "a stem is audible in a 400 ms block only above this loudness (LUFS)", -60.0, float,
                check=Number(-200.0, 0.0), stems=False, separator=False),
    _separation("vocal_min_seconds", "vocal segments shorter than this are left out (seconds)", 2.0, float,
                check=Number(0.0), stems=False, separator=False),
    _separation("filterbank", "STFT implementation; both are the TF STFT equal to torch.stft (open-unmix option)",
                "torch", choices=("torch", "tf"), check=OneOf(("torch", "tf")), stems=False,
                commands={"umx": {}}),
    # the commands' own
    Setting("verbose", "more messages, and TensorFlow's own log lines", False, bool, check=check_bool),
    Setting("input", "audio files, folders or glob patterns (local or gs://)",
            commands={"umx": {"flag": "input", "nargs": "*"}}),
    Setting("outdir", "output folder; stems go to OUTDIR/<input name>/<stem>.<ext> (default: ./<input name>_<model>/)",
            commands={"umx": {}}),
    Setting("start", "excerpt start in seconds", 0.0, float, commands={"umx": {}}),
    Setting("duration", "excerpt duration in seconds; negative: to the end of the file", -1.0, float,
            commands={"umx": {}}),
    Setting("audio_backend", "decoder: soundfile (wav, flac, mp3, ogg, ...) or the ffmpeg program (also m4a/AAC "
                             "and the mixture of .stem.mp4 files)", "soundfile", choices=("soundfile", "ffmpeg"),
            commands={"umx": {}}),
    Setting("no_cuda", "run on the CPU even when a GPU is present", False, bool, commands={"umx": {}}),
    Setting("list_models", "list the model names and exit", False, bool, commands={"umx": {}}),
    Setting("stats", "print each stem's loudness, peaks and audibility, and the vocal segments, after each file",
            False, bool, commands={"umx": {}}),
]}
SEPARATION = tuple(name for name, s in SETTINGS.items() if s.separation)


@contextlib.contextmanager
def _flags_of(command):
    """A SettingError raised inside becomes a UMXError naming the setting's flag in `command` ("umx", "job")."""
    try:
        yield
    except SettingError as exc:
        if command is None:
            raise
        raise UMXError(f"{SETTINGS[exc.field].flag(command)} {exc.problem}") from None


class _SeparationMethods:
    def __post_init__(self):
        for name in SEPARATION:
            try:
                value = SETTINGS[name].check(getattr(self, name))
            except ValueError as exc:
                raise SettingError(name, str(exc)) from None
            object.__setattr__(self, name, value)  # frozen: the normalised value

    @classmethod
    def from_args(cls, args, command):
        """Settings from a command's parsed arguments (`add_arguments`); a UMXError names its flag."""
        with _flags_of(command):
            return cls(**{name: getattr(args, name) for name in SEPARATION if hasattr(args, name)})

    def separator_overrides(self):
        """The keyword arguments `load_separator` takes from these settings."""
        values = {name: getattr(self, name) for name in SEPARATION if SETTINGS[name].separator}
        values["targets"] = list(self.targets) if self.targets else None
        return values

    def output_fields(self):
        """JSON-ready values of the settings that change the stems written (for completeness records)."""
        values = {name: getattr(self, name) for name in SEPARATION if SETTINGS[name].stems}
        values["targets"] = list(self.targets) if self.targets else None
        return {k: v for k, v in values.items() if SETTINGS[k].omitted_at is _SAME or SETTINGS[k].omitted_at != v}

    def analytics_options(self):
        """`umx_core.analytics.describe`'s keyword arguments from these settings, or None (analytics off)."""
        if not self.analytics:
            return None
        return {"audible_db": self.audible_db, "floor_lufs": self.audible_floor,
                "vocal_min_seconds": self.vocal_min_seconds}

    def check_sources(self, sources, command=None):
        """UMXError when `aggregate` names a source the separator does not give (naming `command`'s flag)."""
        with _flags_of(command):
            check_aggregate(self.aggregate, sources)


def separation_settings_class():
    """The `SeparationSettings` dataclass: one field per separation row of `SETTINGS`, its default the row's."""
    made = dataclasses.make_dataclass(
        "SeparationSettings", [(name, object, dataclasses.field(default=SETTINGS[name].default)) for name in SEPARATION],
        bases=(_SeparationMethods,), frozen=True)
    made.__module__ = __name__  # found by name when Beam pickles a job's settings
    made.__doc__ = """The validated settings of one separation run: one field per separation row of
    `SETTINGS` (`targets` as a list or a comma-separated string, `aggregate` as a dict or JSON text)."""
    return made


SeparationSettings = separation_settings_class()


def check(name, value):
    """`value` of the setting `name`, checked and normalised; SettingError saying what is wrong."""
    try:
        return SETTINGS[name].check(value)
    except ValueError as exc:
        raise SettingError(name, str(exc)) from None
