"""The UMX family (open-unmix, and X-UMX as its `bridge` flag): its settings, geometry, saved forms
and exporters; its batch program is `umx_core.families.umx_program`."""

import tensorflow as tf

from umx_core import chunking, settings
from umx_core.errors import UMXError
from umx_core.families import Built, Family
from umx_core.families.umx_program import FilterNetwork, UMXProgram
from umx_core.nn.umx import UMX
from umx_core.settings import N_FFT, N_HOP

# EM settings and their defaults (open-unmix's Separator's)
EM = {"niter": 0, "softmask": False, "residual": False, "wiener_win_len": settings.SETTINGS["wiener_win_len"].default,
      "eps": 1e-10}
SHAPE = {"sample_rate": 44100.0, "n_fft": N_FFT, "n_hop": N_HOP, "nb_channels": 2}  # of filters given as a dict
CHUNKS = {"filterbank": "torch", "segment": None, "context": 64}


def _export_onnx(separator, path, metadata=None):
    from umx_core.runtime.onnx_export import export

    return export(separator, path, metadata)


class UMXFamily(Family):
    """UMX: `{target: spectral filter}` or a `UMX` model; EM settings as open-unmix's Separator's."""

    name = "umx"
    runtimes = ("xla", "openvino")
    saved_settings = ("niter", "softmask", "residual", "wiener_win_len", "filterbank", "segment", "context", "eps")
    exporters = {"onnx": _export_onnx}

    def owns(self, model):
        """A `UMX` model, or a dict of spectral filters (open-unmix's `target_models`)."""
        return isinstance(model, (UMX, dict))

    def build(self, model, options, targets=None):
        """A `Built` UMX with `options` (EM settings, `segment`, `context`, `filterbank`; and for a dict
        of filters `sample_rate`, `n_fft`, `n_hop`, `nb_channels`). The filters are shared, never copied."""
        options = dict(options)
        unknown = sorted(set(options) - set(EM) - set(SHAPE) - set(CHUNKS))
        if unknown:
            raise UMXError(f"unknown UMX setting(s) {unknown}")
        try:
            filterbank = settings.check("filterbank", options.pop("filterbank", CHUNKS["filterbank"]))
            em = {key: options.pop(key, default) for key, default in EM.items()}
            em["wiener_win_len"] = settings.check("wiener_win_len", em["wiener_win_len"])
        except settings.SettingError as exc:
            raise UMXError(f"{exc.field} {exc.problem}") from None
        segment, context = options.pop("segment", None), int(options.pop("context", CHUNKS["context"]))
        if isinstance(model, UMX):
            shape = {"sample_rate": model.sample_rate, "n_fft": model.n_fft, "n_hop": model.n_hop,
                     "nb_channels": model.nb_channels}
            differ = {k: v for k, v in options.items() if v != shape[k]}
            if differ:
                raise UMXError(f"{differ} differ from the model's own {shape}")
            filters, bridge, own = model.joint.filters, model.joint.bridge, list(model.targets)
        else:
            if not model:
                raise UMXError("a Separator needs at least one target model")
            shape = {**SHAPE, **options}
            filters, bridge, own = dict(model), False, list(model)
        targets = list(targets or own)
        missing = [t for t in targets if t not in filters]
        if missing:
            raise UMXError(f"the model has no target(s) {missing}; it has {own}")
        current = isinstance(model, UMX) and targets == own and self.settings_of(model) == em
        if not current:  # a new model over the same layers: no weight is copied
            # a bridged model keeps every filter: each target's estimate depends on all of them
            kept = filters if bridge else {t: filters[t] for t in targets}
            model = UMX(targets, filters=kept, bridge=bridge, **shape, **em)
        if em["niter"] > 0 and len(model.sources) < 2:
            raise UMXError("EM needs at least two sources: separate two or more targets, or set residual=True")
        window = em["wiener_win_len"]
        if segment is None:
            segment = window
        elif window and int(segment) % window:
            raise UMXError(f"segment ({segment}) must be a multiple of wiener_win_len ({window})")
        segment = None if segment is None else int(segment)
        saved = {"n_fft": model.n_fft, "n_hop": model.n_hop, **em, "filterbank": filterbank, "segment": segment,
                 "context": context}
        return Built(model, list(model.targets), model.sources, model.sample_rate, model.nb_channels,
                     chunking.StftGeometry(model.n_fft, model.n_hop, segment, context), saved, segment is not None)

    def merge(self, saved, overrides):
        """A saved separator's settings with `overrides`: a new EM window without a segment of its own
        resets the segment (chunks follow the window)."""
        merged = {**saved, **overrides}
        window, segment = merged.get("wiener_win_len"), merged.get("segment")
        if "segment" not in overrides and window and segment and segment % window:
            merged["segment"] = None
        return merged

    def network(self, built):
        """`built`'s spectral filters (`FilterNetwork`)."""
        return FilterNetwork(built.model)

    def program(self, built, runner, batch_frames=None, jit_compile=True):
        """The `UMXProgram` of `built` around its filters' `runner`."""
        return UMXProgram(built.model, built.geometry, runner, batch_frames, jit_compile)

    def settings_of(self, model):
        """A bare UMX's own EM settings."""
        config = model.get_config()
        return {key: config[key] for key in EM}

    def from_saved_model(self, path, local, config):
        """A UMX rebuilt from its config (`config["model"]`), with the variables of the SavedModel at `local`."""
        try:
            loaded = tf.saved_model.load(local)
        except Exception as exc:
            raise UMXError(f"{path}: cannot load the SavedModel ({exc})") from exc
        model = UMX.from_config(config["model"])
        values = {v.name.rsplit(":", 1)[0]: v for v in loaded.variables}
        missing = [w.path for w in model.weights if w.path not in values]
        if missing or len(values) != len(model.weights):
            raise UMXError(f"{path}: the SavedModel's variables do not match its config (missing {missing[:3]})")
        for weight in model.weights:
            source = values[weight.path]
            if tuple(source.shape) != tuple(weight.shape):
                raise UMXError(f"{path}: variable {weight.path} has shape {tuple(source.shape)}, "
                               f"the config gives {tuple(weight.shape)}")
            weight.assign(source.numpy())
        return model


FAMILY = UMXFamily()
