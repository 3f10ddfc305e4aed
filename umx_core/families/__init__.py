"""Model families: what the chunk engine and the `Separator` are handed for each kind of model.

A family (a `Family`) says whether a Keras model is one of its own, checks and holds its settings
(`build`: the model, its targets and sources, its chunk geometry from `umx_core.chunking`, and the
settings `separator.json` keeps), compiles its batch program (`program`: chunk audio in, stems out,
on a runtime), reads its saved forms and writes its exports. `separator.json` names the family.

`FAMILIES` below is the registry: a new family is its own module and a line here. Modules named in
the `UMX_FAMILIES` environment variable (comma-separated, set by whoever runs the job or command)
are imported too, so a family kept outside this package plugs in the same way.
"""

import dataclasses
import importlib
import os

from umx_core import settings
from umx_core.errors import UMXError

# family name -> the module whose `FAMILY` it is
FAMILIES = {
    "umx": "umx_core.families.umx",
    "htdemucs": "umx_core.families.htdemucs",
}
PLUGINS = "UMX_FAMILIES"
_loaded = {}


@dataclasses.dataclass
class Built:
    """A model made ready to separate by its family.

    Args:
        model: the Keras model, with the settings applied.
        targets: target names, in output order; `sources`: the stems it gives (targets, and more).
        sample_rate, nb_channels: what it takes.
        geometry: its chunk geometry (`umx_core.chunking`).
        settings: `{name: value}` of the family's settings (what `separator.json` keeps beside the model).
        fixed_shapes: every chunk has the same shape, so compiling its program pays (else graph mode).
    """

    model: object
    targets: list
    sources: list
    sample_rate: float
    nb_channels: int
    geometry: object
    settings: dict
    fixed_shapes: bool = True


class Family:
    """A kind of model. Subclasses set `name`, `runtimes` and `saved_settings`, and implement
    `owns`, `build`, `network` and `program`; `from_saved_model` and `exporters` are optional.

    The Separator builds a model (`build`), hands its `network` to the runtime's factory
    (`umx_core.runtime.runner`) and the runner to `program`. A program is called as
    `program(audio, chunks, width)` with float32 `(rows, channels, geometry.input_samples(width))`
    audio and the `Chunk`s of its first rows (the others are padding), and returns numpy
    `(rows, sources, channels, n)` stems; it has `per_call(width)` (chunks per call), `fixed_shapes`
    (batches are padded so that compiled shapes repeat), and `precision`, `runtime`, `batch_frames`
    and `jit_compile` (what runs).
    """

    name = None
    runtimes = ("xla",)
    saved_settings = ()  # the settings a saved separator keeps (Separator keywords)
    exporters = {}  # format -> export(separator, path, metadata)

    def owns(self, model):
        """Whether `model` (a Keras model, or what a Separator is handed) is of this family."""
        raise NotImplementedError

    def build(self, model, options, targets=None):
        """A `Built` from `model` with the family's settings `options` (`{name: value}`), separating
        `targets` (None: all). UMXError for a bad setting."""
        raise NotImplementedError

    def network(self, built):
        """What of `built` runs on a runtime: `groups` (lists of layers computed together),
        `apply(layers, *inputs)`, `copy()`; for OpenVINO also `onnx(form)`, `padded_form`, `outputs`."""
        raise NotImplementedError

    def program(self, built, runner, batch_frames=None, jit_compile=True):
        """The batch program of `built` around its network's `runner` (see the class docstring)."""
        raise NotImplementedError

    def compiles(self, precision):
        """Whether compiling the batch program with XLA pays at `precision` (else graph mode)."""
        return True

    def merge(self, saved, overrides):
        """A saved separator's settings (`separator.json`) with a caller's `overrides`."""
        return {**saved, **overrides}

    def settings_of(self, model):
        """The settings a bare model (a `.keras` file without `separator.json`) carries itself."""
        return {}

    def from_saved_model(self, path, local, config):
        """The model of a SavedModel written by `Separator.export` (at `local`, named `path`)."""
        raise UMXError(f"{path}: the {self.name} family has no SavedModel reader")

    def foreign(self, options):
        """`options` minus the settings rows (`umx_core.settings.SETTINGS`) this family does not take
        that are at their defaults (a command passes every row); UMXError for one that is set."""
        kept = {}
        for key, value in options.items():
            row = settings.SETTINGS.get(key)
            if key in self.saved_settings or row is None:
                kept[key] = value
            elif value is not None and value != row.default:
                raise UMXError(f"{key}: the {self.name} family has no such setting (it takes "
                               f"{', '.join(self.saved_settings) or 'none'})")
        return kept


def _import(module):
    try:
        family = importlib.import_module(module).FAMILY
    except ImportError as exc:
        raise UMXError(f"model family module {module!r} (FAMILIES or {PLUGINS}) cannot be imported: {exc}") from exc
    except AttributeError:
        raise UMXError(f"model family module {module!r} (FAMILIES or {PLUGINS}) defines no FAMILY") from None
    if not isinstance(family, Family):
        raise UMXError(f"model family module {module!r}: its FAMILY is a {type(family).__name__}, not a Family")
    _loaded[family.name] = family
    return family


def all_families():
    """`{name: Family}` of every registered family (and the `UMX_FAMILIES` modules), imported."""
    for module in [*FAMILIES.values(), *filter(None, os.environ.get(PLUGINS, "").split(","))]:
        if module.strip() not in {type(f).__module__ for f in _loaded.values()}:
            _import(module.strip())
    return dict(_loaded)


def get(name):
    """The family called `name` (a saved separator's `family`); UMXError naming the known ones."""
    if name in _loaded:
        return _loaded[name]
    if name in FAMILIES:
        return _import(FAMILIES[name])
    known = all_families()
    if name not in known:
        raise UMXError(f"unknown model family {name!r} (known: {', '.join(known)}; a family outside "
                       f"the package is named in {PLUGINS})")
    return known[name]


def family_of(model):
    """The family a model (or a Separator's first argument) belongs to; UMXError when none owns it."""
    for family in all_families().values():
        if family.owns(model):
            return family
    raise UMXError(f"no model family takes a {type(model).__name__} (known: {', '.join(all_families())})")
