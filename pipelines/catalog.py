"""The catalog job: `python -m pipelines.separate_catalog --input 'gs://b/catalog/**/*.mp3' --output gs://b/stems`.

Stages: expand the input patterns and lists on the workers (no driver-side listing), drop
duplicates (which also redistributes the tracks), skip tracks already complete for this model
and these parameters, probe each header, separate with RunInference and our model handler (batches formed by audio duration; chunks of several
tracks share the network's batches), write the stems, then `separation.json` last. A track is
complete only when its record exists and names the same model and parameters. Failures never
fail the job: they go to `{output}/_failed/{run}.jsonl`; `{output}/_runs/{run}.json` sums up.

Every option not listed here goes to Beam, so `--runner DataflowRunner --project ...` and the
other Beam/Dataflow flags work as usual. DirectRunner is the default.
"""

import dataclasses
import datetime
import hashlib
import json
import os
import sys
import time

import apache_beam as beam
from apache_beam.ml.inference.base import ModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, WorkerOptions

from umx_core import storage
from umx_core.cli import parse_aggregate
from umx_core.errors import UMXError
from umx_core.version import code_version

RECORD = "separation.json"
CODECS = ("wav", "flac", "mp3", "ogg")
NAMESPACE = "separate_catalog"


def _bool(text):
    if str(text).lower() in ("1", "true", "yes", "on"):
        return True
    if str(text).lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


# `--residual` and `--residual=true` (how flex templates pass parameters) both work
_FLAG = dict(type=_bool, nargs="?", const=True, default=False)


class CatalogOptions(PipelineOptions):
    """The job's own options; everything else is Beam's."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--input", action="append", default=[],
                            help="glob of input audio, local or gs:// (repeat it, or separate with commas; ** spans folders)")
        parser.add_argument("--input_list", action="append", default=[],
                            help="text file of input paths, one per line (local or gs://)")
        parser.add_argument("--output", help="output root, local or gs://")
        parser.add_argument("--model", default="demo-5stems", help="model name or path (default: demo-5stems)")
        parser.add_argument("--targets", default=None, help="comma-separated subset of the model's targets")
        parser.add_argument("--niter", type=int, default=1, help="EM iterations (default: 1)")
        parser.add_argument("--softmask", **_FLAG, help="ratio-mask initial estimates for EM")
        parser.add_argument("--residual", **_FLAG, help="add a residual stem (mixture minus the targets)")
        parser.add_argument("--aggregate", default=None, help='JSON {"stem": ["sources", ...]} of the stems to write')
        parser.add_argument("--wiener_win_len", type=int, default=300, help="frames per EM window (default: 300)")
        parser.add_argument("--codec", default="flac", choices=CODECS, help="stem format (default: flac)")
        parser.add_argument("--batch_seconds", type=float, default=600.0,
                            help="audio seconds per inference batch (default: 600)")
        parser.add_argument("--batch_frames", type=int, default=1200,
                            help="STFT frames per network call (default: 1200)")
        parser.add_argument("--overwrite", **_FLAG, help="separate again what is already complete")
        parser.add_argument("--run_id", default=None, help="name of this run's summary and failure list "
                                                           "(default: UTC time)")


@dataclasses.dataclass(frozen=True)
class Track:
    """One input and where its stems go."""

    path: str
    out: str  # output folder of this track
    seconds: float = 0.0


def settings(options):
    """The separation parameters a record must match (and the handler uses)."""
    aggregate = parse_aggregate(options.aggregate) if options.aggregate else None
    targets = [t for t in (options.targets or "").split(",") if t] or None
    return {"model": options.model, "targets": targets, "niter": options.niter, "softmask": options.softmask,
            "residual": options.residual, "aggregate": aggregate, "wiener_win_len": options.wiener_win_len,
            "codec": options.codec}


def fingerprint(params, model_version):
    """A short digest of the parameters and model version: what a complete record must match."""
    blob = json.dumps({**params, "model_version": model_version}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def model_version(model):
    """What identifies the model's weights: the code version and config of a saved separator."""
    from umx_core import registry

    folder = registry.shipped().get(model)
    path = storage.join(folder or model, "separator.json")
    try:
        config = json.loads(storage.read_bytes(path))
        return f"{model}@{config.get('code_version', '?')}"
    except (UMXError, ValueError, OSError):
        return model


def relative_output(path, base):
    """`path` relative to `base`, without its extension (a list entry without base: bucket/key)."""
    if base:
        rel = path[len(base):].lstrip("/")
    else:
        rel = path[len("gs://"):] if storage.is_gcs(path) else os.path.abspath(path).lstrip("/")
    from umx_core.stream import output_name

    folder = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
    return folder + output_name(rel)


class ExpandInputs(beam.DoFn):
    """A pattern or a list file -> (input path, output folder), listed on the worker.

    A list may also be a failure list (`{output}/_failed/{run}.jsonl`): each failed track goes
    back into the folder its first run chose, and a pattern or list that failed to expand is
    expanded again."""

    def __init__(self, output):
        self.output = output

    def process(self, source):
        kind, value = source
        try:
            if kind == "list":
                lines = storage.read_bytes(value).decode().splitlines()
                listed = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
                if any(line.startswith("{") for line in listed):
                    items = list(self._failure_records(value, listed))
                else:
                    items = [(line, storage.join(self.output, relative_output(line, ""))) for line in listed]
            else:
                base = storage.glob_base(value)
                items = [(path, storage.join(self.output, relative_output(path, base)))
                         for path in storage.glob(value)]
        except (UMXError, OSError) as exc:
            beam.metrics.Metrics.counter(NAMESPACE, "failed").inc()
            yield beam.pvalue.TaggedOutput("failed", {"path": value, "kind": kind, "stage": "match", "error": str(exc)})
            return
        for item in items:
            if isinstance(item, beam.pvalue.TaggedOutput):
                yield item
            elif not ("/_failed/" in item[0] or "/_runs/" in item[0] or item[0].endswith(RECORD)):
                yield item

    def _failure_records(self, listing, lines):
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
                path = record["path"]
            except (ValueError, KeyError, TypeError):
                raise UMXError(f"{listing}: line {number} is neither a path nor a failure record") from None
            if record.get("output"):
                yield path, record["output"]
            else:  # a failure to expand: the pattern or list itself, again
                yield from self.process(("list" if record.get("kind") == "list" else "glob", path))


class Plan(beam.DoFn):
    """Skip what is complete; read each header (duration for batching, and a first check)."""

    def __init__(self, fingerprint, overwrite):
        self.fingerprint, self.overwrite = fingerprint, overwrite

    def process(self, item):
        from umx_core import audio

        path, out = item
        beam.metrics.Metrics.counter(NAMESPACE, "found").inc()
        if not self.overwrite:
            try:  # one read: a missing record is a UMXError too
                done = json.loads(storage.read_bytes(storage.join(out, RECORD))).get("fingerprint") == self.fingerprint
            except (UMXError, ValueError):
                done = False
            if done:
                beam.metrics.Metrics.counter(NAMESPACE, "skipped").inc()
                yield beam.pvalue.TaggedOutput("skipped", {"path": path, "status": "skipped"})
                return
        try:
            seconds = audio.info(path).duration
        except UMXError as exc:
            beam.metrics.Metrics.counter(NAMESPACE, "failed").inc()
            yield beam.pvalue.TaggedOutput("failed", {"path": path, "stage": "decode", "error": str(exc), "output": out})
            return
        yield Track(path, out, seconds)


def _configure_gpus():
    """Memory growth on every GPU, so several processes or models can share one."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process
            pass


class SeparatorModelHandler(ModelHandler):
    """RunInference handler: a batch of `Track`s in, one status record per track out.

    The model (a `Separator`) loads once per worker process. `run_inference` streams the
    batch's files through it together, writes each track's stems into its output folder and
    then its `separation.json`; a track that fails is reported, never raised.
    """

    def __init__(self, params, fingerprint, batch_seconds=600.0, batch_frames=1200):
        super().__init__()
        self.params, self.fingerprint = params, fingerprint
        self.batch_seconds, self.batch_frames = float(batch_seconds), int(batch_frames)

    def load_model(self):
        _configure_gpus()
        from umx_core.pretrained import load_separator

        p = self.params
        return load_separator(p["model"], targets=p["targets"], niter=p["niter"], softmask=p["softmask"],
                              residual=p["residual"], wiener_win_len=p["wiener_win_len"],
                              batch_frames=self.batch_frames)

    def batch_elements_kwargs(self):
        # batches by audio duration: about batch_seconds of audio each (a longer track alone)
        return {"min_batch_size": 1, "max_batch_size": max(1, int(self.batch_seconds)),
                "element_size_fn": lambda track: max(1, int(track.seconds))}

    def run_inference(self, batch, model, inference_args=None):
        from umx_core.stream import separate_files

        for track in batch:
            storage.delete(storage.join(track.out, RECORD))  # re-separating: not complete meanwhile
        began = time.monotonic()
        results = separate_files([t.path for t in batch], [t.out for t in batch], model, ext=self.params["codec"],
                                 aggregate=self.params["aggregate"])
        wall = time.monotonic() - began
        return [self._finish(track, result, model, wall) for track, result in zip(batch, results)]

    def _finish(self, track, result, model, wall):
        if isinstance(result, Exception):
            beam.metrics.Metrics.counter(NAMESPACE, "failed").inc()
            return {"path": track.path, "status": "failed", "stage": getattr(result, "stage", "separate"),
                    "error": str(result), "output": track.out}
        try:
            stems = result.stems
            downmixed = any(note.startswith("downmixed") for note in result.notes)
            if downmixed:
                beam.metrics.Metrics.counter(NAMESPACE, "downmixed").inc()
            record = {
                "input": track.path, "input_checksum": storage.checksum(track.path),
                "duration_seconds": result.duration, "stems": stems, "fingerprint": self.fingerprint,
                "model": self.params["model"], "model_version": model_version(self.params["model"]),
                "parameters": self.params, "code_version": code_version(), "notes": result.notes,
                "sample_rate": int(model.sample_rate),
                "separated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            }
            storage.write_bytes(storage.join(track.out, RECORD), json.dumps(record, indent=2).encode())
        except (UMXError, OSError) as exc:
            beam.metrics.Metrics.counter(NAMESPACE, "failed").inc()
            return {"path": track.path, "status": "failed", "stage": "write", "error": str(exc), "output": track.out}
        beam.metrics.Metrics.counter(NAMESPACE, "separated").inc()
        beam.metrics.Metrics.distribution(NAMESPACE, "audio_seconds").update(int(result.duration))
        return {"path": track.path, "status": "separated", "seconds": result.duration, "downmixed": downmixed,
                "batch_wall_seconds": wall}


class Summarize(beam.CombineFn):
    """Counts and audio seconds over every status record."""

    def create_accumulator(self):
        return {"found": 0, "skipped": 0, "separated": 0, "failed": 0, "downmixed": 0, "audio_seconds": 0.0,
                "failed_records": []}

    def add_input(self, acc, record):
        status = record.get("status", "failed")
        acc[status] += 1
        if status != "failed" or record.get("stage") != "match":
            acc["found"] += 1
        if status == "separated":
            acc["audio_seconds"] += record.get("seconds", 0.0)
            acc["downmixed"] += bool(record.get("downmixed"))
        if status == "failed":
            acc["failed_records"].append({k: record[k] for k in ("path", "stage", "error", "output", "kind")
                                          if record.get(k)})
        return acc

    def merge_accumulators(self, accs):
        out = self.create_accumulator()
        for acc in accs:
            for key in ("found", "skipped", "separated", "failed", "downmixed", "audio_seconds"):
                out[key] += acc[key]
            out["failed_records"].extend(acc["failed_records"])
        return out

    def extract_output(self, acc):
        return acc


class WriteSummary(beam.DoFn):
    def __init__(self, output, run_id, started, params):
        self.output, self.run_id, self.started, self.params = output, run_id, started, params

    def process(self, summary):
        failed = sorted(summary.pop("failed_records"), key=lambda r: r["path"] or "")
        if failed:
            lines = "".join(json.dumps(r) + "\n" for r in failed)
            storage.write_bytes(storage.join(self.output, "_failed", f"{self.run_id}.jsonl"), lines.encode())
        summary.update(run=self.run_id, audio_hours=summary.pop("audio_seconds") / 3600.0,
                       wall_seconds=time.time() - self.started, parameters=self.params, code_version=code_version())
        storage.write_bytes(storage.join(self.output, "_runs", f"{self.run_id}.json"),
                            json.dumps(summary, indent=2).encode())
        yield summary


def build(pipeline, options, started=None):
    """Add the job to `pipeline`; returns the summary PCollection."""
    params = settings(options)
    fp = fingerprint(params, model_version(options.model))
    run_id = options.run_id or datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    sources = [("glob", p.strip()) for arg in options.input for p in arg.split(",") if p.strip()]
    sources += [("list", p) for p in options.input_list]
    expanded = (pipeline
                | "Sources" >> beam.Create(sources)
                | "Expand" >> beam.ParDo(ExpandInputs(options.output)).with_outputs("failed", main="tracks"))
    planned = (expanded.tracks
               | "Distinct" >> beam.Distinct()  # a track listed twice is separated once (and redistributed)
               | "Plan" >> beam.ParDo(Plan(fp, options.overwrite)).with_outputs("skipped", "failed", main="todo"))
    handler = SeparatorModelHandler(params, fp, options.batch_seconds, options.batch_frames)
    separated = planned.todo | "Separate" >> RunInference(handler)
    return ((expanded.failed, planned.skipped, planned.failed, separated)
            | "Statuses" >> beam.Flatten()
            | "Summarize" >> beam.CombineGlobally(Summarize())
            | "WriteSummary" >> beam.ParDo(WriteSummary(options.output, run_id, started or time.time(), params)))


def validate(options):
    """One clear line for each problem with the job's own options."""
    problems = []
    if not options.input and not options.input_list:
        problems.append("give --input PATTERN or --input_list FILE")
    if not options.output:
        problems.append("give --output (a local folder or gs://bucket/prefix)")
    if options.aggregate:
        try:
            parse_aggregate(options.aggregate)
        except UMXError as exc:
            problems.append(str(exc))
    return problems


def _worker_setup(options):
    """How the project reaches remote workers: a worker image (`--sdk_container_image`, such as
    infra/dataflow's) already holds it, with the Beam SDK, so nothing is staged
    (`sdk_location=container`); otherwise setup.py is staged and installed on each worker."""
    if options.get_all_options().get("runner") in (None, "DirectRunner"):
        return
    setup = options.view_as(SetupOptions)
    if options.view_as(WorkerOptions).sdk_container_image:
        if setup.sdk_location == "default":
            setup.sdk_location = "container"
    elif setup.setup_file is None:
        setup.setup_file = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")


def run(argv, wait=True):
    """Build and run the job from command-line arguments; returns `(PipelineResult, options)`.

    `wait=False` returns once the job is submitted (a flex-template launcher must exit then;
    on DirectRunner the job has run by then anyway). Raises UMXError listing every problem
    with the job's own options."""
    options = PipelineOptions(list(argv))
    catalog = options.view_as(CatalogOptions)
    problems = validate(catalog)
    if problems:
        raise UMXError("; ".join(problems))
    _worker_setup(options)
    started = time.time()
    pipeline = beam.Pipeline(options=options)
    build(pipeline, catalog, started)
    result = pipeline.run()
    if wait:
        result.wait_until_finish()
    return result, catalog


def main(argv=None, wait=True):
    """Command line of `python -m pipelines.separate_catalog`; returns the exit code.
    `wait=False`: return once the job is submitted (the flex-template launcher)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _, catalog = run(argv, wait)
    except UMXError as exc:
        for problem in str(exc).split("; "):
            print(f"separate_catalog: error: {problem}", file=sys.stderr)
        return 2
    summary = storage.join(catalog.output, "_runs")
    print(f"done: stems under {catalog.output}/<track>/, run summary in {summary}/" if wait else
          f"submitted: stems will be under {catalog.output}/<track>/, the run summary in {summary}/")
    return 0
