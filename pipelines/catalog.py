"""The catalog job: `python -m pipelines.separate_catalog --input 'gs://b/catalog/**/*.mp3' --output gs://b/stems`.

Stages (`pipelines.stages`): expand the input patterns and lists on the workers (no driver-side
listing), list the output's records (`pipelines.records`: on gs:// the skip check then costs no
request per complete track), give each output folder one input, skip tracks already complete for
these weights and these settings, probe each header, separate with RunInference and our model handler
(`pipelines.handler`: batches formed by audio duration; chunks of several tracks share the
network's batches), write the stems, then `separation.json` last. A track is complete only when
its record exists and names the same fingerprint. Failures never fail the job: they go to
`{output}/_failed/{run}.jsonl`; `{output}/_runs/{run}.json` sums up.

Options (`pipelines.options`): every flag the job does not know goes to Beam, so
`--runner DataflowRunner --project ...` work as usual. DirectRunner is the default.
"""

import datetime
import json
import os
import sys
import time

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions, WorkerOptions

from pipelines import manifest
from pipelines import options as job_options
from pipelines.handler import SeparatorModelHandler
from pipelines.records import ListRecords, fingerprint, model_digest
from pipelines.stages import NAMESPACE, ClaimFolders, ExpandInputs, Plan, is_utf8
from pipelines.summary import RUNS, Summarize, WriteSummary
from umx_core import storage
from umx_core.errors import UMXError, printable


def build(pipeline, options, run_id, started=None):
    """Add the job to `pipeline` (a Beam `Pipeline` or `TestPipeline`); returns the summary PCollection.

    Args:
        options: the job's parsed options (`pipelines.options.parse_known_args`).
        run_id: names the run summary and failure list.
    """
    digest = model_digest(options.model)  # once per job, in the driver
    settings = options.settings
    fp = fingerprint(settings.output_fields(), digest)
    params = {"model": options.model, **settings.output_fields(), "analytics": settings.analytics}
    expanded = (pipeline
                | "Sources" >> beam.Create(job_options.sources(options))
                | "Expand" >> beam.ParDo(ExpandInputs(options.output)).with_outputs("failed", main="tracks"))
    records = (pipeline
               | "Output" >> beam.Create([options.output])
               | "ListRecords" >> beam.ParDo(ListRecords()).with_outputs("complete", main="records"))
    claimed = ((expanded.tracks, records.records)
               | "WithRecords" >> beam.Flatten()
               | "ByFolder" >> beam.GroupByKey()  # also redistributes the tracks over the workers
               | "Claim" >> beam.ParDo(ClaimFolders()).with_outputs("failed", main="tracks"))
    listed = beam.pvalue.AsSingleton(records.complete, default_value=False)
    planned = claimed.tracks | "Plan" >> beam.ParDo(Plan(fp, options.overwrite), listed=listed).with_outputs(
        "skipped", "failed", main="todo")
    handler = SeparatorModelHandler(options.model, settings, fp, digest, options.batch_seconds, run_id)
    separated = planned.todo | "Separate" >> RunInference(handler)
    if settings.analytics:
        write_manifest(separated, options, run_id)
    return ((expanded.failed, claimed.failed, planned.skipped, planned.failed, separated)
            | "Statuses" >> beam.Flatten()
            | "Summarize" >> beam.CombineGlobally(Summarize())
            | "WriteSummary" >> beam.ParDo(WriteSummary(options.output, run_id, started or time.time(), params)))


class CatalogOptions(PipelineOptions):
    """The job's options as Beam pipeline options, so a Dataflow job shows them with its own."""

    @classmethod
    def _add_argparse_args(cls, parser):
        job_options.add_arguments(parser)


def write_manifest(separated, options, run_id):
    """The separated tracks' manifest rows to `{output}/_manifest/{run}-*.parquet` (Beam's Parquet
    sink) and, with `--manifest_table`, appended to that BigQuery table (created if needed)."""
    rows = separated | "ManifestRows" >> beam.FlatMap(lambda status: status.get("rows", []))
    rows | "WriteManifest" >> beam.io.WriteToParquet(
        storage.join(options.output, manifest.MANIFEST, run_id), manifest.pyarrow_schema(),
        file_name_suffix=".parquet")
    if options.manifest_table:
        rows | "ManifestToBigQuery" >> beam.io.WriteToBigQuery(
            options.manifest_table, schema=manifest.bigquery_schema(),
            method=beam.io.WriteToBigQuery.Method.FILE_LOADS,
            create_disposition=beam.io.BigQueryDisposition.CREATE_IF_NEEDED,
            write_disposition=beam.io.BigQueryDisposition.WRITE_APPEND)


def _worker_setup(pipeline_options):
    """How the project reaches remote workers: a worker image (`--sdk_container_image`, such as
    infra/dataflow's) already holds it, with the Beam SDK, so nothing is staged
    (`sdk_location=container`); otherwise setup.py is staged and installed on each worker."""
    if pipeline_options.get_all_options().get("runner") in (None, "DirectRunner"):
        return
    setup = pipeline_options.view_as(SetupOptions)
    if pipeline_options.view_as(WorkerOptions).sdk_container_image:
        if setup.sdk_location == "default":
            setup.sdk_location = "container"
    elif setup.setup_file is None:
        setup.setup_file = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")


def run(argv=None, save_main_session=True, test_pipeline=None, wait=True):
    """Build and run the job; returns `(PipelineResult, job options)`.

    Args:
        argv: command-line arguments (default: `sys.argv[1:]`); the job's own, and Beam's.
        save_main_session: pickle the main session for the workers (Beam's convention).
        test_pipeline: a `TestPipeline` to build into instead of a new pipeline (in-process tests).
        wait: wait for the job to finish; False returns once it is submitted (a flex-template
            launcher must exit then; on DirectRunner the job has run by then anyway).
    Raises:
        UMXError listing every problem with the job's own options.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    options, _ = job_options.parse_known_args(argv)
    _check_names(options)
    options.run_id = options.run_id or datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    pipeline_options = PipelineOptions(argv)  # Beam's flags, and ours (CatalogOptions) for the job's record
    pipeline_options.view_as(SetupOptions).save_main_session = save_main_session
    _worker_setup(pipeline_options)
    pipeline = test_pipeline or beam.Pipeline(options=pipeline_options)
    build(pipeline, options, options.run_id)
    result = pipeline.run()
    if wait:
        result.wait_until_finish()
    return result, options


def _check_names(options):
    """UMXError naming each input, list, output or model path that is not UTF-8 text (a shell passes
    a name's bytes as they are): Beam, the records and the manifest could not carry it."""
    names = [*options.input, *options.input_list, options.output, str(options.model)]
    bad = [f"{printable(name)}: not UTF-8 text (each byte that is not is shown as \\xNN); rename it"
           for name in names if not is_utf8(name)]
    if bad:
        raise UMXError("; ".join(bad))


def main(argv=None, wait=True):
    """Command line of `python -m pipelines.separate_catalog`; returns the exit code.
    `wait=False`: return once the job is submitted (the flex-template launcher)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    from umx_core.cli.console import quiet_tensorflow

    quiet_tensorflow(job_options.build_parser().parse_known_args(argv)[0].verbose)
    try:
        result, options = run(argv, wait=wait)
    except UMXError as exc:
        for problem in str(exc).split("; "):
            print(f"separate_catalog: error: {printable(problem)}", file=sys.stderr)
        return 2
    summary_path = storage.join(options.output, RUNS, f"{options.run_id}.json")
    if not wait:
        print(f"submitted: stems will be under {options.output}/<track>/, the run summary in {summary_path}")
        return 0
    try:
        summary = json.loads(storage.read_bytes(summary_path))
    except (UMXError, ValueError) as exc:
        counted = _counters(result)
        print(f"separate_catalog: error: the run wrote no summary ({printable(exc)}); its counters: "
              + ", ".join(f"{key} {counted.get(key, 0)}" for key in ("found", "separated", "skipped", "failed"))
              + f"; the tracks' stems and records are under {options.output}", file=sys.stderr)
        return 1
    for pattern in summary.get("unmatched_inputs", []):
        print(f"separate_catalog: warning: {printable(pattern)} matched no input file", file=sys.stderr)
    for error in summary.get("errors", []):
        print(f"separate_catalog: error: {printable(error)}", file=sys.stderr)
    print(f"done: found {summary['found']}, separated {summary['separated']}, skipped {summary['skipped']}, "
          f"failed {summary['failed']}; stems under {options.output}/<track>/, run summary {summary_path}")
    return 1 if summary.get("errors") else 0


def _counters(result):
    """`{name: value}` of the job's counters (what the run's summary would have said)."""
    from apache_beam.metrics.metric import MetricsFilter

    totals = {}
    for counter in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]:
        name = counter.key.metric.name
        totals[name] = totals.get(name, 0) + (counter.committed or counter.attempted or 0)
    return totals
