"""Trained spectral filters -> the end-to-end UMX, saved as `separator/` (.keras) and `saved_model/`.

Both folders load with `umx_core.load_separator`; each carries the training configuration
and the code version in its `separator.json`.
"""

from umx_core import storage
from umx_core.separator import Separator
from umx_core.umx import UMX


def build_umx(filters, config, sample_rate):
    """A fresh UMX (outside any distribution strategy) holding copies of `{target: filter}` weights."""
    copies = {}
    for target, layer in filters.items():
        copy = type(layer).from_config(layer.get_config())
        copy.build((None, None, copy.nb_bins, copy.nb_channels))
        copy.set_weights(layer.get_weights())
        copies[target] = copy
    return UMX(list(copies), filters=copies, n_fft=config["n_fft"], n_hop=config["n_hop"],
               nb_channels=config["nb_channels"], sample_rate=float(sample_rate))


def export_filters(filters, config, sample_rate, folder, niter=None, residual=False, metadata=None):
    """Write `folder/separator` and `folder/saved_model` (local or gs://); returns the Separator.

    Args:
        config: holds n_fft, n_hop and nb_channels (a training configuration).
        niter: EM iterations; default as open-unmix's `umx` command: one when there are two or
            more sources, none for a single-target model without residual (EM needs two).
        metadata: stored in separator.json (default: `{"training": config}`).
    """
    model = build_umx(filters, config, sample_rate)
    if niter is None:
        niter = 1 if len(model.targets) + bool(residual) > 1 else 0
    separator = Separator(model, niter=niter, residual=residual)
    metadata = {"training": config} if metadata is None else metadata
    separator.save(storage.join(folder, "separator"), metadata)
    separator.export(storage.join(folder, "saved_model"), metadata)
    return separator
