"""One training step under a `tf.distribute` strategy, and the losses that steps and validation compute.

A step is one iteration of the custom loop (`strategy.run` in a `tf.function`), the same under every
strategy: each replica computes the loss (`training.losses.objective`) and its gradients on its
share of the batch as one XLA program, adds its share of the L2 weight decay, applies them, and
averages the batch-norm statistics with the other replicas. Validation reports open-unmix's loss:
the mean squared error between estimated and true target magnitudes, per target.
"""

import numpy as np
import tensorflow as tf

from training.losses import magnitudes, mse_per_target, objective


class DistributedSteps:
    """The compiled steps of one model and its optimizer under a strategy.

    Args:
        strategy: the `tf.distribute` strategy the model and the optimizer were built under.
        model: the built joint filter (`training.export.joint_filter`).
        optimizer: its built optimizer.
        config: a resolved configuration (`training.config.resolve`).

    Attributes:
        train_step: `train_step(iterator)`, one optimizer step on the next batch of an iterator over
            `epoch_batches`; returns the per-target loss `(targets,)`, summed over replicas.
        gradients: `gradients(mixture, stems)`, `(per-target loss (targets,), gradients)` of one
            replica's batch, compiled with XLA unless the configuration's `jit_compile` is off.
    """

    def __init__(self, strategy, model, optimizer, config):
        self.strategy, self.model, self.optimizer, self.config = strategy, model, optimizer, config
        self.replicas = strategy.num_replicas_in_sync
        self.train_step = tf.function(self._distributed_step)
        # the forward and backward pass as one XLA program, the recurrences' many small steps fused
        # (docs/benchmarks.md, "Training step"); the optimizer and the replicas' all-reduce stay outside it
        jit = bool(config.get("jit_compile", True))
        self.gradients = tf.function(self._gradients_of, jit_compile=jit)
        # validation compiled too (docs/benchmarks.md, "Besides the steps"); XLA compiles once per
        # input shape (a song's last, shorter chunk is a second shape)
        self._valid_step = tf.function(self.losses, reduce_retracing=True, jit_compile=jit)

    def losses(self, mixture, stems, training=False):
        """Per-example, per-target MSE `(batch, targets)` of the estimated magnitudes (`training.losses`).

        Args:
            mixture: float32 `(batch, channels, samples)`.
            stems: float32 `(batch, targets, channels, samples)`.
        """
        c = self.config

        def spectrogram(audio):
            return magnitudes(audio, c["n_fft"], c["n_hop"], mono=c["nb_channels"] == 1)

        return mse_per_target(self.model(spectrogram(mixture), training=training), spectrogram(stems))

    def _gradients_of(self, mixture, stems):
        """`(per-target loss (targets,), gradients)` of one replica's batch."""
        # each replica's share of the mean: gradients are summed over replicas
        with tf.GradientTape() as tape:
            per_target, loss = (x / self.replicas for x in objective(self.model, mixture, stems, self.config))
        return per_target, tape.gradient(loss, self.model.trainable_variables)

    def _replica_step(self, mixture, stems):
        variables = self.model.trainable_variables
        per_target, grads = self.gradients(mixture, stems)
        # gradients are summed over replicas: each adds its share of the L2 term
        decay = self.config["weight_decay"] / self.replicas
        self.optimizer.apply_gradients([(g + decay * v, v) for g, v in zip(grads, variables)])
        # batch-norm statistics move per replica; average them so every replica (and worker) agrees
        context = tf.distribute.get_replica_context()
        for variable in self.model.non_trainable_variables if self.replicas > 1 else ():
            # a tensor without a device (a single local replica, as on each worker of a cluster)
            # gives the all-reduce no destination: pin it to the variable's device
            with tf.device(variable.value.device):
                value = tf.identity(variable)
            variable.assign(context.all_reduce(tf.distribute.ReduceOp.MEAN, value))
        return per_target

    def _distributed_step(self, iterator):
        per_target = self.strategy.run(self._replica_step, args=next(iterator))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_target, axis=None)

    def epoch_batches(self, train_set, steps_per_epoch, epoch, start_step=0):
        """The distributed batches of one epoch of `train_set`, from step `start_step` on.

        Args:
            train_set: a `training.data.FixedSourcesTrackFolderDataset`.
            steps_per_epoch: the epoch's steps of `batch_size` excerpts.
            epoch, start_step: where the epoch's excerpts start.
        Returns:
            a distributed dataset: iterate it for `train_step`.
        """
        batch = self.config["batch_size"]

        def dataset_fn(context):
            # each input pipeline (a worker) reads its own shard of the epoch's excerpts
            ds = train_set.dataset(epoch, size=steps_per_epoch * batch, start=start_step * batch,
                                   shard=(context.num_input_pipelines, context.input_pipeline_id))
            per_replica = context.get_per_replica_batch_size(batch)
            return ds.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def validate(self, valid_set):
        """Per-target loss on `valid_set` (mean over its items), computed whole on every worker."""
        totals = np.zeros(len(self.config["targets"]))
        for mixture, stems in valid_set.dataset().batch(1):
            totals += self._valid_step(mixture, stems).numpy()[0]
        return totals / len(valid_set)
