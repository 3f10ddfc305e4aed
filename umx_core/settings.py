"""One separation's settings, declared once: names, defaults, validation and help text.

`SeparationSettings` is what the `Separator` (through `load_separator`), the `umx` command, the
catalog job's options and the flex-template metadata all read. Each field is declared once in
`FIELDS`; `add_arguments` turns the table into command-line flags in either spelling
(`--wiener-win-len` for `umx`, `--wiener_win_len` for Beam), so defaults and help never drift.

Run knobs (`batch_frames`: memory against speed) are settings of a run, never of a saved model:
`Separator.config()` leaves them out and `load_separator` ignores them in old model files.

The file names every package shares live here too: `CONFIG_NAME` (a saved separator's settings)
and `RECORD_NAME` (a separated track's completeness record).
"""

import dataclasses
import json

from umx_core.errors import UMXError

CONFIG_NAME = "separator.json"  # beside a saved model: the Separator's settings and code version
RECORD_NAME = "separation.json"  # beside a track's stems, written last: the track is complete
# stem codecs: soundfile format and subtype. WAV stays float (stems may exceed full scale).
CODECS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24"), "mp3": ("MP3", "MPEG_LAYER_III"),
          "ogg": ("OGG", "VORBIS")}


_SAME = object()  # a job default that is the field's own


@dataclasses.dataclass(frozen=True)
class Field:
    """One setting: default, help text, and how a command line spells it."""

    default: object
    help: str
    umx_flag: str = None  # the `umx` spelling when it is not the field name with dashes
    job_default: object = _SAME  # the catalog job's default, where it differs


FIELDS = {
    "targets": Field(None, "targets to separate (default: all the model's targets)"),
    "niter": Field(1, "EM (Wiener) iterations; 0 disables the refinement"),
    "softmask": Field(False, "ratio-mask initial estimates for EM (instead of magnitudes with the mixture phase)"),
    "residual": Field(False, "add a stem for the mixture minus the targets"),
    "wiener_win_len": Field(300, "STFT frames per independent EM window"),
    "aggregate": Field(None, 'JSON {"stem": ["source", ...]} of the stems to write, e.g. '
                             '\'{"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]}\''),
    "codec": Field("wav", "stem format: wav (float), flac (24 bit), mp3 or ogg", umx_flag="--ext",
                   job_default="flac"),
    "batch_frames": Field(None, "STFT frames per network call: memory against speed (default: from the device: "
                                "on a GPU as many as half its memory holds; on a CPU 2400, about 1.8 GB peak for a "
                                "umxhq-size model whatever the file length; 1800: 1.7 GB, 4800: 2.8 GB)"),
    "precision": Field("float32", "the network's arithmetic: float32, or bfloat16 for accelerators with fast "
                                  "bfloat16 matmuls (STFT and EM stay float32; on a 2-core AVX512-BF16 CPU it was "
                                  "slower, docs/benchmarks.md)"),
}
PRECISIONS = ("float32", "bfloat16")
# fields that change what is written (a completeness record must match them); batch_frames does not
OUTPUT_FIELDS = ("targets", "niter", "softmask", "residual", "wiener_win_len", "aggregate", "codec", "precision")
# output fields left out of a record while at these values: records written before the field existed stay valid
OMITTED_AT = {"precision": "float32"}


class SettingError(UMXError):
    """A setting with a bad value; `field` names it, so each command can say its own flag."""

    def __init__(self, field, problem):
        super().__init__(f"{field} {problem}")
        self.field, self.problem = field, problem


def parse_aggregate(value):
    """`--aggregate` (JSON text or a dict) as `{stem: [source, ...]}`; UMXError saying what is wrong."""
    if value is None or isinstance(value, dict):
        aggregate = value
    else:
        try:
            aggregate = json.loads(value)
        except ValueError as exc:
            raise SettingError("--aggregate", f"is not valid JSON of the form {{\"stem\": [\"source\", ...]}} "
                                              f"({exc})") from exc
    if aggregate is not None and (not isinstance(aggregate, dict) or not aggregate or not all(
            isinstance(v, list) and v and all(isinstance(s, str) for s in v) for v in aggregate.values())):
        raise SettingError("--aggregate", 'must be a JSON object of non-empty lists of source names, '
                                          'e.g. {"vocals": ["vocals"], "band": ["drums", "bass", "other"]}')
    return aggregate


def _targets(value):
    if value is None or value == "" or value == []:
        return None
    names = [t.strip() for t in value.split(",")] if isinstance(value, str) else [str(t).strip() for t in value]
    names = [t for t in names if t]
    if len(set(names)) != len(names):
        raise SettingError("--targets", f"names a target twice: {names}")
    return tuple(names) or None


@dataclasses.dataclass(frozen=True)
class SeparationSettings:
    """The settings of one separation run, validated. See `FIELDS` for each one's meaning.

    `targets` may be given as a list or a comma-separated string, `aggregate` as a dict or JSON text.
    """

    targets: tuple = FIELDS["targets"].default
    niter: int = FIELDS["niter"].default
    softmask: bool = FIELDS["softmask"].default
    residual: bool = FIELDS["residual"].default
    wiener_win_len: int = FIELDS["wiener_win_len"].default
    aggregate: dict = FIELDS["aggregate"].default
    codec: str = FIELDS["codec"].default
    batch_frames: int = FIELDS["batch_frames"].default
    precision: str = FIELDS["precision"].default

    def __post_init__(self):
        fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        fix("targets", _targets(self.targets))
        fix("aggregate", parse_aggregate(self.aggregate))
        fix("codec", str(self.codec).lstrip(".").lower())
        if self.codec not in CODECS:
            raise SettingError("codec", f"must be one of {', '.join(CODECS)}, got {self.codec!r}")
        for name in ("niter", "batch_frames"):
            if name == "batch_frames" and self.batch_frames is None:
                continue  # from the device (`Separator`)
            if not isinstance(getattr(self, name), int) or getattr(self, name) < (0 if name == "niter" else 1):
                raise SettingError(name, f"must be a whole number {'>= 0' if name == 'niter' else '>= 1'}, "
                                         f"got {getattr(self, name)!r}")
        if self.wiener_win_len is not None and (not isinstance(self.wiener_win_len, int) or self.wiener_win_len < 1):
            raise SettingError("wiener_win_len", f"must be a positive number of frames or None, "
                                                 f"got {self.wiener_win_len!r}")
        if self.precision not in PRECISIONS:
            raise SettingError("precision", f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        fix("softmask", bool(self.softmask))
        fix("residual", bool(self.residual))

    @classmethod
    def from_flags(cls, style, **values):
        """Settings from a command line's values (None: the default), errors naming the command's flag.

        Args:
            style: "umx" (the `umx` command's flags and defaults) or "beam" (the catalog job's).
        """
        defaults = {} if style == "umx" else {k: f.job_default for k, f in FIELDS.items() if f.job_default is not _SAME}
        try:
            return cls(**{**defaults, **{k: v for k, v in values.items() if v is not None}})
        except SettingError as exc:
            name = exc.field.lstrip("-").replace("-", "_")
            raise UMXError(f"{flag(name, style) if name in FIELDS else exc.field} {exc.problem}") from None

    def separator_overrides(self):
        """The keyword arguments `load_separator` takes from these settings."""
        return {"targets": list(self.targets) if self.targets else None, "niter": self.niter,
                "softmask": self.softmask, "residual": self.residual, "wiener_win_len": self.wiener_win_len,
                "batch_frames": self.batch_frames, "precision": self.precision}

    def output_fields(self):
        """JSON-ready values of the settings that change the stems written (for completeness records)."""
        values = dataclasses.asdict(self)
        values["targets"] = list(self.targets) if self.targets else None
        return {k: values[k] for k in OUTPUT_FIELDS if OMITTED_AT.get(k, object()) != values[k]}

    def check_sources(self, sources):
        """UMXError when `aggregate` names a source the separator does not give."""
        if self.aggregate:
            unknown = sorted({s for parts in self.aggregate.values() for s in parts} - set(sources))
            if unknown:
                raise UMXError(f"--aggregate names sources the model does not give: {unknown} (it gives {sources})")


def flag(name, style):
    """The command-line spelling of a field: `style` "umx" (dashes, open-unmix's names) or "beam" (underscores)."""
    if style == "umx":
        return FIELDS[name].umx_flag or "--" + name.replace("_", "-")
    return "--" + name


def help_text(name, job=False):
    """A field's help with its default, as every command line shows it."""
    field = FIELDS[name]
    default = field.job_default if job and field.job_default is not _SAME else field.default
    return field.help if default in (None, False) else f"{field.help} (default: {default})"
