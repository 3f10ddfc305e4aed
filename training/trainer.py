"""The training loop: `Trainer(config, output).run()` (the command is `training.train`).

One custom loop (`strategy.run` in a `tf.function`) serves every strategy:
MirroredStrategy over the local devices, or MultiWorkerMirroredStrategy when `TF_CONFIG`
describes a cluster (Keras 3's `model.fit` fails under the latter). The loss is open-unmix's:
the mean squared error between estimated and true target magnitudes, summed over targets.
Checkpoints, the TensorBoard log and the exports are written to a local folder and copied to a
gs:// output; `resume=True` continues from the latest checkpoint after a kill.
"""

import json
import os
import tempfile
import time

from training import config as configuration
from training import summaries
from training.distribute import is_chief, make_strategy
from training.export import SAVED_MODEL
from umx_core import storage
from umx_core.errors import UMXError

LATEST, BEST = "latest", "best"


def log(message):
    """Print one progress line at once (unbuffered, for logs of long runs)."""
    print(message, flush=True)


class Trainer:
    """The training loop and its state; `run()` trains until the epochs run out or it stops early.

    A step at a time: `train_step(iter(epoch_batches(epoch)))` (per-target loss), `gradients(mixture,
    stems)` (one replica's, compiled), `losses`, and `separate(audio)` over the same weights.

    Args:
        config: a resolved configuration (`training.config.resolve`).
        output: run folder, local or gs://.
        workdir: local folder for the run when `output` is gs:// (default: a temporary one).
        resume: continue from `output/checkpoints/latest`; `config` then holds only what to change
            (`training.config.resume`: the saved configuration is the run's).
        strategy: a `tf.distribute` strategy (default: `make_strategy()`).
        max_steps: stop (with a checkpoint) after this many optimizer steps in total.
    """

    def __init__(self, config, output, workdir=None, resume=False, strategy=None, max_steps=None):
        from training import checkpoint

        self.strategy = strategy or make_strategy()
        self.chief = is_chief(self.strategy)
        self.output = output
        self.max_steps = max_steps
        self._saved_state = {}
        self.state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "history": [], "best_valid": None}
        restored = None
        if resume:
            latest = storage.join(output, "checkpoints", LATEST)
            saved, arrays = checkpoint.read(latest)
            restored = (arrays, latest)
            config = configuration.resume(saved["config"], config, latest)
            self.state = {k: saved[k] for k in self.state}
            self._saved_state = saved
        self.config = config
        if self.chief and not storage.is_gcs(output):
            self.local = output
        else:
            # other workers keep their own checkpoints in --workdir (or a scratch folder); only
            # the chief's reach the output
            self.local = workdir or tempfile.mkdtemp(prefix="umx-train-")
        os.makedirs(self.local, exist_ok=True)
        self.sync = checkpoint.Syncer(self.local, output) if self.chief else (lambda: 0)
        self._build(restored)

    # --- set-up ---------------------------------------------------------------
    def _build(self, restored):
        import keras
        import tensorflow as tf

        from training import checkpoint, schedule
        from training.data import FixedSourcesTrackFolderDataset, input_statistics
        from training.export import joint_filter
        from umx_core.nn.umx import UMX

        c = self.config
        if not c.get("root"):
            raise UMXError("no dataset: give --root (or a profile with a root)")
        gains = c["gain_range"] or None
        self.train_set = FixedSourcesTrackFolderDataset(
            c["root"], "train", c["targets"], c["seq_duration"], c["samples_per_track"], c["random_track_mix"],
            gains, c["channel_swap"], c["seed"], c["sample_rate"], interferers=c["interferers"],
            speed_range=c.get("speed_range") or None)
        self.valid_set = FixedSourcesTrackFolderDataset(
            c["root"], "valid", c["targets"], None, 1, False, None, False, c["seed"], c["sample_rate"],
            valid_chunk=c["valid_seconds"], interferers=self.train_set.interferers)
        c["interferers"] = self.train_set.interferers  # resolved, so a resumed run mixes the same stems
        self.replicas = self.strategy.num_replicas_in_sync
        if c["batch_size"] % self.replicas:
            raise UMXError(f"batch_size {c['batch_size']} is not a multiple of the {self.replicas} replicas")
        self.steps_per_epoch = c["steps_per_epoch"] or len(self.train_set) // c["batch_size"]
        if self.steps_per_epoch < 1:
            raise UMXError(f"{len(self.train_set)} training excerpts per epoch are fewer than one batch of "
                           f"{c['batch_size']}")
        statistics = {}
        if restored is None:
            mean, scale = input_statistics(self.train_set, c["n_fft"], c["n_hop"])
            statistics = dict(input_mean=mean, input_scale=scale)
        with self.strategy.scope():
            keras.utils.set_random_seed(c["seed"])
            self.model = joint_filter(c, self.train_set.sample_rate, **statistics)
            # torch Adam's epsilon; weight decay is added to the gradient (L2), as torch Adam does
            self.optimizer = keras.optimizers.Adam(learning_rate=c["lr"], epsilon=1e-8)
            self.optimizer.build(self.model.trainable_variables)
        if restored is not None:
            arrays, source = restored
            checkpoint.restore(arrays, self.model, self.optimizer, source)
            self.optimizer.learning_rate.assign(self._saved_state["lr"])
            log(f"resumed from {restored[1]}: epoch {self.state['epoch']}, step {self.state['global_step']}")
        saved = self._saved_state
        self.plateau = schedule.ReduceLROnPlateau(c["lr_decay_gamma"], c["lr_decay_patience"], c["lr_decay_cooldown"])
        self.early = schedule.EarlyStopping(c["patience"])
        self.plateau.restore(saved.get("plateau", {}))
        self.early.restore(saved.get("early_stopping", {}))
        # the end-to-end model over the same filter layers, for audio examples
        self.umx = UMX(c["targets"], filters=self.model.filters, n_fft=c["n_fft"], n_hop=c["n_hop"],
                       nb_channels=c["nb_channels"], sample_rate=self.train_set.sample_rate, bridge=c.get("bridge", False))
        self.writer = tf.summary.create_file_writer(os.path.join(self.local, "logs")) if self.chief else None
        self.train_step = tf.function(self._distributed_step)
        # the forward and backward pass as one XLA program, the recurrences' many small steps fused
        # (docs/benchmarks.md, "Training step"); the optimizer and the replicas' all-reduce stay outside it
        jit = bool(c.get("jit_compile", True))
        self.gradients = tf.function(self._gradients_of, jit_compile=jit)
        # validation and the audio examples compiled too (docs/benchmarks.md, "Besides the steps");
        # XLA compiles once per input shape (a song's last, shorter chunk is a second shape)
        self._valid_step = tf.function(self.losses, reduce_retracing=True, jit_compile=jit)
        self.separate = tf.function(self.umx, jit_compile=jit)

    # --- the computation ------------------------------------------------------
    def losses(self, mixture, stems, training=False):
        """Per-example, per-target MSE `(batch, targets)` of the estimated magnitudes (`training.losses`)."""
        from training.losses import magnitudes, mse_per_target

        c = self.config
        spectrogram = lambda audio: magnitudes(audio, c["n_fft"], c["n_hop"], mono=c["nb_channels"] == 1)  # noqa: E731
        return mse_per_target(self.model(spectrogram(mixture), training=training), spectrogram(stems))

    def _gradients_of(self, mixture, stems):
        """`(per-target loss (targets,), gradients)` of one replica's batch."""
        import tensorflow as tf

        from training.losses import objective

        with tf.GradientTape() as tape:  # each replica's share of the mean: gradients are summed over replicas
            per_target, loss = (x / self.replicas for x in objective(self.model, mixture, stems, self.config))
        return per_target, tape.gradient(loss, self.model.trainable_variables)

    def _replica_step(self, mixture, stems):
        import tensorflow as tf

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
        import tensorflow as tf

        per_target = self.strategy.run(self._replica_step, args=next(iterator))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_target, axis=None)

    def epoch_batches(self, epoch, start_step=0):
        """The distributed training batches of one epoch from `start_step` on (iterate it for `train_step`)."""
        import tensorflow as tf

        batch = self.config["batch_size"]

        def dataset_fn(context):
            ds = self.train_set.dataset(epoch, size=self.steps_per_epoch * batch, start=start_step * batch,
                                        shard=(context.num_input_pipelines, context.input_pipeline_id))
            per_replica = context.get_per_replica_batch_size(batch)
            return ds.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def validate(self):
        """Per-target validation loss (mean over items), computed whole on every worker."""
        import numpy as np

        totals = np.zeros(len(self.config["targets"]))
        for mixture, stems in self.valid_set.dataset().batch(1):
            totals += self._valid_step(mixture, stems).numpy()[0]
        return totals / len(self.valid_set)

    # --- bookkeeping ----------------------------------------------------------
    def _checkpoint(self, name):
        from training import checkpoint

        state = {**self.state, "config": self.config, "plateau": self.plateau.state(),
                 "early_stopping": self.early.state(), "lr": float(self.optimizer.learning_rate.numpy())}
        checkpoint.save(os.path.join(self.local, "checkpoints", name), self.model, self.optimizer, state)

    def _write_config(self):
        if self.chief:
            with open(os.path.join(self.local, "config.json"), "w") as f:
                json.dump(self.config, f, indent=2)

    # --- the loop -------------------------------------------------------------
    def run(self):
        """Train; returns the history (a record per epoch). Exports when training ends."""
        c = self.config
        targets = c["targets"]
        self._write_config()
        mixed = f" (mixed with {', '.join(self.train_set.interferers)})" if self.train_set.interferers else ""
        log(f"training {targets}{mixed} on {len(self.train_set.tracks)} tracks ({len(self.valid_set)} validation "
            f"items), {self.replicas} replica(s), {self.steps_per_epoch} steps of {c['batch_size']} per epoch")
        last_sync = time.monotonic()
        while self.state["epoch"] < c["epochs"]:
            epoch, start = self.state["epoch"], self.state["step_in_epoch"]
            iterator = iter(self.epoch_batches(epoch, start))
            totals, steps, began = None, 0, time.monotonic()
            for step in range(start, self.steps_per_epoch):
                per_target = self.train_step(iterator).numpy()
                totals = per_target if totals is None else totals + per_target
                steps += 1
                self.state["step_in_epoch"] = step + 1
                self.state["global_step"] += 1
                done = self.max_steps is not None and self.state["global_step"] >= self.max_steps
                if self.state["global_step"] % c["checkpoint_steps"] == 0 or done:
                    self._checkpoint(LATEST)
                    if done or time.monotonic() - last_sync >= c["sync_seconds"]:
                        self.sync()
                        last_sync = time.monotonic()
                if done:
                    log(f"stopped after {self.state['global_step']} steps (--max-steps)")
                    return self.state["history"]
            seconds = time.monotonic() - began
            train = totals / max(steps, 1) if totals is not None else [float("nan")] * len(targets)
            valid = self.validate()
            lr = float(self.optimizer.learning_rate.numpy())
            record = {
                "epoch": epoch + 1,
                "train_loss": float(sum(train)), "train_targets": dict(zip(targets, map(float, train))),
                "valid_loss": float(sum(valid)), "valid_targets": dict(zip(targets, map(float, valid))),
                "lr": lr, "excerpts_per_second": steps * c["batch_size"] / max(seconds, 1e-9), "seconds": seconds,
            }
            new_lr = self.plateau.step(record["valid_loss"], lr)
            if new_lr != lr:
                self.optimizer.learning_rate.assign(new_lr)
            stop = self.early.step(record["valid_loss"])
            self.state["history"].append(record)
            self.state.update(epoch=epoch + 1, step_in_epoch=0)
            improved = self.state["best_valid"] is None or record["valid_loss"] < self.state["best_valid"]
            if improved:
                self.state["best_valid"] = record["valid_loss"]
                self._checkpoint(BEST)
                self._export(saved_model=False)  # OUTPUT/separator: the best model so far, during training too
            self._checkpoint(LATEST)
            if self.chief:
                summaries.write_epoch(self.writer, epoch + 1, record, self.separate, self.valid_set, c)
            log(summaries.progress_line(record, new_lr, improved))
            if time.monotonic() - last_sync >= c["sync_seconds"]:
                self.sync()
                last_sync = time.monotonic()
            if stop:
                log(f"early stopping: no improvement for {self.early.patience} epochs")
                break
        self.export()
        self.sync()
        return self.state["history"]

    def export(self):
        """Best weights (else the latest) as `separator/` (.keras) and `saved_model/` under the run folder."""
        from training import checkpoint
        from umx_core.pretrained import RUN_SEPARATOR

        if not self.chief:
            return
        best = os.path.join(self.local, "checkpoints", BEST)
        if os.path.exists(best):
            checkpoint.restore(checkpoint.read(best)[1], self.model, self.optimizer, best)
        self._export(saved_model=True)
        log(f"exported {storage.join(self.output, RUN_SEPARATOR)} and {storage.join(self.output, SAVED_MODEL)}")

    def _export(self, saved_model):
        """The model as it is now as the run's `separator/` (and `saved_model/`), on the chief."""
        from training.export import export_filters

        if self.chief:
            export_filters(self.model.filters, self.config, self.train_set.sample_rate, self.local,
                           saved_model=saved_model)
