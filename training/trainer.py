"""The training loop: `Trainer(config, output).run()` (the command is `training.train`).

A `Trainer` sets a run up from its configuration (datasets, model, optimizer, schedules) and runs
its epochs: the steps, validation, the learning-rate schedule, early stopping, checkpoints and the
TensorBoard log. One custom loop serves every strategy: MirroredStrategy over the local devices, or
MultiWorkerMirroredStrategy when `TF_CONFIG` describes a cluster (Keras 3's `model.fit` fails under
the latter); each step is `training.steps`, its loss `training.losses`. Checkpoints, the log and the
exports are written to the run folder (`training.run_folder`), local or copied to gs://;
`resume=True` continues from the latest checkpoint after a kill.
"""

import time

from training import checkpoint
from training import config as configuration
from training import summaries
from training.distribute import is_chief, make_strategy
from training.export import SAVED_MODEL
from training.run_folder import BEST, LATEST, RunFolder, checkpoint_folder
from umx_core import storage
from umx_core.errors import UMXError


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
        self.strategy = strategy or make_strategy()
        self.chief = is_chief(self.strategy)
        self.output = output
        self.max_steps = max_steps
        self.state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "history": [], "best_valid": None}
        restored = None
        if resume:
            latest = checkpoint_folder(output, LATEST)
            saved, arrays = checkpoint.read(latest)
            restored = (saved, arrays, latest)
            config = configuration.resume(saved["config"], config, latest)
            self.state = {k: saved[k] for k in self.state}
        self.config = config
        self.folder = RunFolder(output, self.chief, workdir)
        self._read_datasets()
        self._build(restored)

    # --- set-up ---------------------------------------------------------------
    def _read_datasets(self):
        """The training and validation sets of the configuration, and the steps of an epoch."""
        from training.data import FixedSourcesTrackFolderDataset

        c = self.config
        if not c.get("root"):
            raise UMXError("no dataset: give --root (or a profile with a root)")
        self.train_set = FixedSourcesTrackFolderDataset(
            c["root"], "train", c["targets"], c["seq_duration"], c["samples_per_track"], c["random_track_mix"],
            c["gain_range"] or None, c["channel_swap"], c["seed"], c["sample_rate"],
            interferers=c["interferers"], speed_range=c.get("speed_range") or None)
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

    def _build(self, restored):
        """The model, its optimizer, the schedules and the compiled steps; `restored` is
        `(state, arrays, folder)` of the checkpoint a resumed run continues from."""
        import keras
        import tensorflow as tf

        from training import schedule
        from training.data import input_statistics
        from training.export import joint_filter
        from training.steps import DistributedSteps
        from umx_core.nn.umx import UMX

        c = self.config
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
        saved = {}
        if restored is not None:
            saved, arrays, source = restored
            checkpoint.restore(arrays, self.model, self.optimizer, source)
            self.optimizer.learning_rate.assign(saved["lr"])
            log(f"resumed from {source}: epoch {self.state['epoch']}, step {self.state['global_step']}")
        self.plateau = schedule.ReduceLROnPlateau(c["lr_decay_gamma"], c["lr_decay_patience"],
                                                  c["lr_decay_cooldown"])
        self.early = schedule.EarlyStopping(c["patience"])
        self.plateau.restore(saved.get("plateau", {}))
        self.early.restore(saved.get("early_stopping", {}))
        self.steps = DistributedSteps(self.strategy, self.model, self.optimizer, c)
        self.train_step, self.gradients, self.losses = self.steps.train_step, self.steps.gradients, self.steps.losses
        # the end-to-end model over the same filter layers, for audio examples, compiled as validation is
        self.umx = UMX(c["targets"], filters=self.model.filters, n_fft=c["n_fft"], n_hop=c["n_hop"],
                       nb_channels=c["nb_channels"], sample_rate=self.train_set.sample_rate,
                       bridge=c.get("bridge", False))
        self.separate = tf.function(self.umx, jit_compile=bool(c.get("jit_compile", True)))
        self.writer = tf.summary.create_file_writer(storage.join(self.folder.local, "logs")) if self.chief else None

    def epoch_batches(self, epoch, start_step=0):
        """The distributed training batches of one epoch from `start_step` on (iterate it for `train_step`)."""
        return self.steps.epoch_batches(self.train_set, self.steps_per_epoch, epoch, start_step)

    def validate(self):
        """Per-target validation loss (mean over items), computed whole on every worker."""
        return self.steps.validate(self.valid_set)

    # --- the loop -------------------------------------------------------------
    def run(self):
        """Train; returns the history (a record per epoch). Exports when training ends."""
        c = self.config
        self.folder.write_config(c)
        mixed = f" (mixed with {', '.join(self.train_set.interferers)})" if self.train_set.interferers else ""
        log(f"training {c['targets']}{mixed} on {len(self.train_set.tracks)} tracks ({len(self.valid_set)} "
            f"validation items), {self.replicas} replica(s), {self.steps_per_epoch} steps of {c['batch_size']} "
            f"per epoch")
        self._last_sync = time.monotonic()
        while self.state["epoch"] < c["epochs"]:
            epoch, began = self.state["epoch"], time.monotonic()
            totals, steps, stopped = self._train_epoch(epoch, self.state["step_in_epoch"])
            if stopped:
                log(f"stopped after {self.state['global_step']} steps (--max-steps)")
                return self.state["history"]
            seconds = time.monotonic() - began
            train = totals / max(steps, 1) if totals is not None else [float("nan")] * len(c["targets"])
            if self._end_epoch(epoch, train, steps, seconds):
                log(f"early stopping: no improvement for {self.early.patience} epochs")
                break
        self.export()
        self.folder.sync()
        return self.state["history"]

    def _train_epoch(self, epoch, start):
        """Steps `start ..` of `epoch`: `(summed per-target losses or None, steps taken, stopped)`,
        `stopped` once `max_steps` is reached (after its checkpoint)."""
        iterator = iter(self.epoch_batches(epoch, start))
        totals, steps = None, 0
        for step in range(start, self.steps_per_epoch):
            per_target = self.train_step(iterator).numpy()
            totals = per_target if totals is None else totals + per_target
            steps += 1
            self.state["step_in_epoch"] = step + 1
            self.state["global_step"] += 1
            done = self.max_steps is not None and self.state["global_step"] >= self.max_steps
            if self.state["global_step"] % self.config["checkpoint_steps"] == 0 or done:
                self._checkpoint(LATEST)
                self._sync(after=0.0 if done else self.config["sync_seconds"])
            if done:
                return totals, steps, True
        return totals, steps, False

    def _end_epoch(self, epoch, train, steps, seconds):
        """Validate the epoch, record it, step the schedules, checkpoint, log; True to stop early."""
        c, targets = self.config, self.config["targets"]
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
            # OUTPUT/separator: the best model so far, during training too
            self.folder.export(self.model.filters, c, self.train_set.sample_rate, saved_model=False)
        self._checkpoint(LATEST)
        if self.chief:
            summaries.write_epoch(self.writer, epoch + 1, record, self.separate, self.valid_set, c)
        log(summaries.progress_line(record, new_lr, improved))
        self._sync(after=c["sync_seconds"])
        return stop

    # --- bookkeeping ----------------------------------------------------------
    def _checkpoint(self, name):
        state = {**self.state, "config": self.config, "plateau": self.plateau.state(),
                 "early_stopping": self.early.state(), "lr": float(self.optimizer.learning_rate.numpy())}
        self.folder.save_checkpoint(name, self.model, self.optimizer, state)

    def _sync(self, after):
        """Copy the run folder to the output if `after` seconds have passed since the last copy."""
        if time.monotonic() - self._last_sync >= after:
            self.folder.sync()
            self._last_sync = time.monotonic()

    def export(self):
        """Best weights (else the latest) as `separator/` (.keras) and `saved_model/` under the run folder."""
        from umx_core.pretrained import RUN_SEPARATOR

        if not self.chief:
            return
        self.folder.restore_best(self.model, self.optimizer)
        self.folder.export(self.model.filters, self.config, self.train_set.sample_rate, saved_model=True)
        log(f"exported {storage.join(self.output, RUN_SEPARATOR)} and {storage.join(self.output, SAVED_MODEL)}")
