"""RunInference's model handler for the catalog job: the Separator loads once per worker process,
a batch of tracks (formed by audio duration) streams through it together, and each track's
stems and then its completeness record (`separation.json`, written last) are stored."""

import datetime
import json
import time

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler

from pipelines import manifest
from pipelines.records import RECORD_NAME, PlacedStems, check_placed, record_metadata
from pipelines.stages import NAMESPACE, count, failure
from umx_core import storage
from umx_core.errors import UMXError
from umx_core.version import code_version


def _configure_gpus():
    """Memory growth on every GPU, so several processes or models can share one."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process
            pass


class SeparatorModelHandler(ModelHandler):
    """RunInference handler: a batch of `TrackJob`s in, one status record per track out.

    Args:
        model: model name or path.
        settings: the job's `umx_core.settings.SeparationSettings`.
        fingerprint: what the records name (`pipelines.records.fingerprint`).
        model_digest: the weights' digest (`pipelines.records.model_digest`), stored in each record.
        batch_seconds: audio seconds per batch (a longer track goes alone).
        run_id: the run, named in each record.
    """

    def __init__(self, model, settings, fingerprint, model_digest, batch_seconds=600.0, run_id=None):
        super().__init__()
        self.model, self.settings, self.fingerprint = model, settings, fingerprint
        self.model_digest, self.batch_seconds, self.run_id = model_digest, float(batch_seconds), run_id

    def load_model(self):
        from umx_core.cli.console import quiet_tensorflow

        # no persistent XLA cache here (umx_core/cli/xla_cache.py): a worker compiles its own programs
        # rather than load ones that other processes, settings or machines left in a shared folder
        quiet_tensorflow()
        _configure_gpus()
        from umx_core.pretrained import load_separator

        return load_separator(self.model, **self.settings.separator_overrides())

    def batch_elements_kwargs(self):
        # batches by audio duration: about batch_seconds of audio each (a longer track alone)
        return {"min_batch_size": 1, "max_batch_size": max(1, int(self.batch_seconds)),
                "element_size_fn": lambda track: max(1, int(track.seconds))}

    def run_inference(self, batch, model, inference_args=None):
        from umx_core.stream import separate_files

        refused, todo = {}, []
        for track in batch:
            try:  # re-separating: not complete meanwhile
                storage.delete(storage.join(track.out, RECORD_NAME))
                todo.append(track)
            except (UMXError, OSError) as exc:  # storage still failing after retries: this track only
                refused[id(track)] = failure(UMXError(str(exc), path=track.path, stage="write"), output=track.out)
        began, placed = time.monotonic(), PlacedStems()
        results = separate_files([t.path for t in todo], [t.out for t in todo], model, ext=self.settings.codec,
                                 aggregate=self.settings.aggregate, on_place=placed,
                                 analytics=self.settings.analytics_options()) if todo else []
        wall = time.monotonic() - began
        finished = {id(track): self._finish(track, result, placed, model, wall) for track, result in zip(todo, results)}
        return [refused.get(id(track)) or finished[id(track)] for track in batch]

    def _finish(self, track, result, placed, model, wall):
        if result.error is not None:
            return failure(result.error, output=track.out)
        downmixed = any(note.startswith("downmixed") for note in result.notes)
        record = {
            "input": track.path, "input_identity": track.identity, "input_checksum": None,
            "duration_seconds": result.duration, "stems": result.stems, "stem_checksums": placed.checksums(result.stems),
            "fingerprint": self.fingerprint, "model": self.model, "model_digest": self.model_digest,
            "parameters": self.settings.output_fields(), "code_version": code_version(), "notes": result.notes,
            "sample_rate": int(model.sample_rate), "channels": result.channels, "run_id": self.run_id,
            "separated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "separation_seconds": round(result.seconds, 3), "analytics": result.analytics,
            "analytics_settings": self.settings.analytics_options(),
        }
        try:
            checksum = storage.checksum(track.path)
            # replaced while it was separated: the checksum is not of these stems' input, and the
            # planned identity no longer matches either, so the next run separates it again
            record["input_checksum"] = checksum if storage.identity(track.path) == track.identity else None
            path = storage.join(track.out, RECORD_NAME)
            check_placed(track.out, result.stems, placed, path)  # not beside another attempt's stems...
            storage.write_bytes(path, json.dumps(record, indent=2).encode(), metadata=record_metadata(record))
            check_placed(track.out, result.stems, placed, path)  # ...nor left there if one placed its stems meanwhile
        except (UMXError, OSError) as exc:
            return failure(UMXError(str(exc), path=track.path, stage="write"), output=track.out)
        count("separated")
        count("downmixed", int(downmixed))
        beam.metrics.Metrics.distribution(NAMESPACE, "audio_seconds").update(int(result.duration))
        status = {"path": track.path, "status": "separated", "seconds": result.duration, "downmixed": downmixed,
                  "batch_wall_seconds": wall}
        if result.analytics is not None:  # the manifest's rows (pipelines.manifest)
            status["rows"] = manifest.rows(record, track.out)
        return status
