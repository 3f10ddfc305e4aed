"""Learning-rate decay on plateau and early stopping, with state that checkpoints carry.

Both follow open-unmix's training loop: `torch.optim.lr_scheduler.ReduceLROnPlateau`
(mode min, relative threshold 1e-4, cooldown) and `openunmix.utils.EarlyStopping`
(mode min, min_delta 0); tests check them step by step against those two.
"""

import dataclasses
import math

# progress, restored on resume; the other fields are settings, which a resumed run may change
_PROGRESS = ("best", "num_bad_epochs", "cooldown_counter")


def _restore_progress(schedule, state):
    for name in _PROGRESS:
        if name in state and hasattr(schedule, name):
            setattr(schedule, name, state[name])


@dataclasses.dataclass
class ReduceLROnPlateau:
    """Multiply the learning rate by `factor` after `patience` epochs without improvement."""

    factor: float = 0.3
    patience: int = 80
    cooldown: int = 10
    threshold: float = 1e-4
    min_lr: float = 0.0
    best: float = math.inf
    num_bad_epochs: int = 0
    cooldown_counter: int = 0

    def step(self, metric, lr):
        """The learning rate for the next epoch, given this epoch's validation loss and `lr`."""
        if metric < self.best * (1.0 - self.threshold):
            self.best, self.num_bad_epochs = float(metric), 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            new_lr = max(lr * self.factor, self.min_lr)
            if lr - new_lr > 1e-8:
                lr = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        return lr

    def state(self):
        """The fields to store in a checkpoint."""
        return dataclasses.asdict(self)

    def restore(self, state):
        """Take the progress (best, counters) from `state()`; the settings stay this object's."""
        _restore_progress(self, state)


@dataclasses.dataclass
class EarlyStopping:
    """Stop after `patience` epochs without a validation loss below the best so far."""

    patience: int = 140
    min_delta: float = 0.0
    best: float = None
    num_bad_epochs: int = 0

    def step(self, metric):
        """True when training should stop after this epoch."""
        if self.best is None:
            self.best = float(metric)
            return False
        if math.isnan(metric):
            return True
        if metric < self.best - self.min_delta:
            self.best, self.num_bad_epochs = float(metric), 0
        else:
            self.num_bad_epochs += 1
        return self.num_bad_epochs >= self.patience

    def state(self):
        """The fields to store in a checkpoint."""
        return dataclasses.asdict(self)

    def restore(self, state):
        """Take the progress (best, counters) from `state()`; the settings stay this object's."""
        _restore_progress(self, state)
