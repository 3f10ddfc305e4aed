"""A training run's folder: its checkpoints, its configuration and its model, kept locally and copied out.

The chief writes into a local folder (the output itself when that is local) and `sync()` copies it
to a gs:// output; every other worker of a cluster keeps its own checkpoints in a local folder that
never reaches the output. `checkpoints/latest` is where the loop is (a killed run resumes from it),
`checkpoints/best` the weights of the lowest validation loss, which the run's `separator/` holds.
"""

import json
import os
import tempfile

from training import checkpoint
from training.export import export_filters
from umx_core import storage

LATEST, BEST = "latest", "best"


def checkpoint_folder(run, name):
    """The folder of checkpoint `name` (`LATEST` or `BEST`) in the run folder `run`, local or gs://."""
    return storage.join(run, "checkpoints", name)


class RunFolder:
    """Where one task of a training run writes.

    Args:
        output: the run folder, local or gs://.
        chief: this task writes the run (`training.distribute.is_chief`); the others keep only
            their own checkpoints.
        workdir: local folder for the run when `output` is gs:// or this task is not the chief
            (default: a temporary one).

    Attributes:
        local: the local folder written.
        sync: `sync()` copies what changed in `local` to a gs:// output (`training.checkpoint.Syncer`).
    """

    def __init__(self, output, chief, workdir=None):
        self.output, self.chief = output, chief
        if chief and not storage.is_gcs(output):
            self.local = output
        else:
            # other workers keep their own checkpoints in --workdir (or a scratch folder); only
            # the chief's reach the output
            self.local = workdir or tempfile.mkdtemp(prefix="umx-train-")
        os.makedirs(self.local, exist_ok=True)
        self.sync = checkpoint.Syncer(self.local, output) if chief else (lambda: 0)

    def save_checkpoint(self, name, model, optimizer, state):
        """Write checkpoint `name`: the model's and optimizer's variables and the loop's `state` (JSON)."""
        checkpoint.save(checkpoint_folder(self.local, name), model, optimizer, state)

    def restore_best(self, model, optimizer):
        """Load the best checkpoint into `model` and `optimizer`; without one they keep their weights."""
        best = checkpoint_folder(self.local, BEST)
        if os.path.exists(best):
            checkpoint.restore(checkpoint.read(best)[1], model, optimizer, best)

    def write_config(self, config):
        """`config.json`, the run's resolved configuration (on the chief)."""
        if self.chief:
            with open(os.path.join(self.local, "config.json"), "w") as f:
                json.dump(config, f, indent=2)

    def export(self, filters, config, sample_rate, saved_model):
        """The filters as they are now as the run's `separator/` (and `saved_model/`), on the chief."""
        if self.chief:
            export_filters(filters, config, sample_rate, self.local, saved_model=saved_model)
