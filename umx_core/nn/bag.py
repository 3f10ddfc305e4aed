"""A bag of waveform models: each source the weighted mean of the models' estimates of it, as
demucs's `BagOfModels` (`htdemucs_ft`: four fine-tuned HTDemucs, each weighted 1 on its own source)."""

import keras
import numpy as np
import tensorflow as tf

from umx_core.errors import UMXError
from umx_core.nn import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class ModelBag(keras.Model):
    """Models that take the same `(batch, channels, samples)` audio and give the same sources.

    Args:
        models: Keras models, each `(batch, channels, samples)` -> `(batch, sources, channels, samples)`,
            with the same `sources` and `training_length`.
        weights: `(models, sources)` weight of each model's estimate of each source (None: all 1).
        name: the Keras model name.
    Returns (call):
        `(batch, sources, channels, samples)`: for source k, sum_m w[m, k] out_m[k] / sum_m w[m, k].
    """

    def __init__(self, models, weights=None, name="bag"):
        super().__init__(name=name)
        self.models = list(models)
        if not self.models:
            raise UMXError("a bag needs at least one model")
        self.sources = list(self.models[0].sources)
        if any(list(m.sources) != self.sources for m in self.models):
            raise UMXError(f"the bag's models give different sources: {[list(m.sources) for m in self.models]}")
        lengths = {m.training_length for m in self.models}
        if len(lengths) > 1:
            raise UMXError(f"the bag's models have different segments ({sorted(lengths)} samples): "
                           "only a bag of one segment is supported")
        self.training_length = lengths.pop()
        self.config = dict(self.models[0].config)
        weights = np.ones((len(self.models), len(self.sources))) if weights is None else np.asarray(weights, float)
        if weights.shape != (len(self.models), len(self.sources)) or (weights.sum(axis=0) <= 0).any() \
                or (weights < 0).any():
            raise UMXError(f"bag weights must be {len(self.models)} rows (models) of {len(self.sources)} "
                           f"non-negative numbers (sources), each source weighted somewhere; got {weights.tolist()}")
        self.bag_weights = weights
        # the models a source's weights leave out are not run for it; a model with no weight at all is not run
        self.used = [m for m, row in zip(self.models, weights) if row.any()]
        self.scale = (weights / weights.sum(axis=0))[weights.any(axis=1)].astype(np.float32)

    def call(self, mix):
        """`(batch, channels, samples)` -> `(batch, sources, channels, samples)`."""
        out = 0.0
        for model, scale in zip(self.used, self.scale):
            out += model(mix) * tf.constant(scale)[None, :, None, None]
        return out

    def get_config(self):
        """The models' configs and the weights."""
        return {"name": self.name, "weights": self.bag_weights.tolist(),
                "models": [keras.saving.serialize_keras_object(m) for m in self.models]}

    @classmethod
    def from_config(cls, config):
        """The bag `get_config` describes."""
        models = [keras.saving.deserialize_keras_object(m) for m in config["models"]]
        return cls(models, config["weights"], name=config["name"])
