"""Names that are not ASCII, and hostile ones, through the catalog job (pipelines/stages.py,
catalog.py, manifest.py): each is kept (stems, a record, manifest rows that Parquet and BigQuery's
load take) or refused with a failure naming it, escaped; none collides with another silently.

One job over local inputs (which can hold every name but NUL, and bytes that are not UTF-8) and
gs:// ones (the emulator: NUL, and `/` inside what looks like markup) to gs://, then a rerun; then
the run report, opened in headless Chromium: every name is text, no script runs.
"""

import datetime
import json
import math
import os
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from pipelines import manifest, report
from pipelines.catalog import run
from pipelines.stages import ExpandInputs
from tests.pipelines.conftest import check_records, failure_records, run_in_process, stems_and_records, write_audio
from tests.pipelines.test_manifest import manifest_table
from tests.pipelines.test_stages import run_dofn
from umx_core import storage
from umx_core.errors import UMXError, printable

# kept: stems and a record in a folder named as the input is, without its extension
KEPT = ["<img src=x onerror=alert(1)>.wav", "<img src=x onerror=document.title='pwned'>.wav",
        "Ünïcødé — 曲.flac", "line\u2028separator.wav"]
GCS_KEPT = ["<script>document.title='pwned'</script>.wav"]  # `/` only an object name can hold
# refused (stage "output"): control characters, Unicode's category Cc (C0, DEL, C1)
REFUSED = ["carriage\rreturn.wav", "escape\x1b[31mred.wav", "delete\x7f.wav", "next\x85line.wav"]
GCS_REFUSED = ["nul\x00.wav"]  # no POSIX file name holds NUL
NOT_UTF8 = b"\xff\xfe.wav"  # a local name of bytes that are not UTF-8: refused, its bytes shown as \xNN
COLLIDING = "Ünïcødé — 曲.wav"  # same folder as the .flac: refused, naming both


@pytest.fixture(scope="module")
def job(tmp_path_factory, gcs_emulator, tiny_model):
    """`(inputs, output)` after a run ("h1") and a rerun ("h2"); `inputs` maps each input path to
    its expected folder (kept) or None (refused)."""
    root = tmp_path_factory.mktemp("hostile")
    local, source = str(root / "in"), f"gs://{gcs_emulator}/hostile-in"
    output = f"gs://{gcs_emulator}/hostile-out"
    inputs = {}
    for seed, name in enumerate(KEPT + REFUSED + [COLLIDING]):
        path = write_audio(os.path.join(local, "local", name), seconds=0.5, seed=seed)
        inputs[path] = None if name in REFUSED + [COLLIDING] else f"{output}/local/{os.path.splitext(name)[0]}"
    raw = os.path.join(os.fsencode(local), b"local", NOT_UTF8)
    with open(raw, "wb") as f:
        f.write(storage.read_bytes(os.path.join(local, "local", KEPT[0])))
    inputs[printable(os.fsdecode(raw))] = None  # its failure names it so: `.../\xff\xfe.wav`
    for seed, name in enumerate(KEPT + GCS_KEPT + REFUSED + GCS_REFUSED):
        scratch = write_audio(str(root / "scratch" / f"{seed}{os.path.splitext(name)[1]}"), seconds=0.5, seed=seed)
        storage.write_bytes(f"{source}/gcs/{name}", storage.read_bytes(scratch))
        kept = name in KEPT + GCS_KEPT
        inputs[f"{source}/gcs/{name}"] = f"{output}/gcs/{os.path.splitext(name)[0]}" if kept else None
    common = ["--input", os.path.join(local, "**"), "--input", f"{source}/**", "--output", output,
              "--model", tiny_model, "--codec", "wav"]
    run_in_process(common + ["--run_id", "h1"])
    run_in_process(common + ["--run_id", "h2"])
    return inputs, output


def test_each_name_is_kept_or_refused_naming_it_and_a_rerun_skips_the_kept(job):
    inputs, output = job
    kept = {path: folder for path, folder in inputs.items() if folder}
    first, again = (json.loads(storage.read_bytes(f"{output}/_runs/{run_id}.json")) for run_id in ("h1", "h2"))
    assert (first["found"], first["separated"], first["failed"]) == (len(inputs), len(kept), len(inputs) - len(kept))
    assert (again["separated"], again["skipped"], again["failed"]) == (0, len(kept), len(inputs) - len(kept))
    records = check_records(output)  # each record beside the very stems it names
    assert {f"{output}/{folder}": record["input"] for folder, record in records.items()} == \
        {folder: path for path, folder in kept.items()}  # one folder per name, named as the input is
    for record in records.values():
        assert sorted(record["stems"]) == ["drums", "vocals"]
    failed = {record["path"]: record for record in failure_records(output, "h1")}
    assert set(failed) == {path for path, folder in inputs.items() if not folder}
    for path, record in failed.items():
        assert record["stage"] == "output" and record["error"].isprintable(), record
        assert record["error"].startswith(printable(path)), record
    assert "not UTF-8" in failed[next(p for p in failed if p.endswith(r"\xff\xfe.wav"))]["error"]
    collided = failed[next(p for p in failed if p.endswith(COLLIDING))]
    assert "Ünïcødé — 曲.flac" in collided["error"]  # names the input that keeps the folder


def test_nothing_half_written_is_left_and_every_folder_with_stems_has_its_record(job):
    _, output = job
    stems, records = stems_and_records(output)
    assert not [path for path in stems if path.endswith(".part") or ".tmp-" in path]
    assert {path.rsplit("/", 1)[0] for path in stems} == set(records)


def bigquery_takes(row):
    """Raise unless a BigQuery load takes `row` as the job's sink hands it over: Beam's file loads
    write it with `RowAsDictJsonCoder` (UTF-8 JSON, one line), and each field must be one of the
    schema's, of its type, and present where REQUIRED."""
    from apache_beam.io.gcp.bigquery_tools import RowAsDictJsonCoder

    line = RowAsDictJsonCoder().encode(row)
    assert b"\n" not in line
    fields = {field["name"]: field for field in manifest.bigquery_schema()["fields"]}
    parsed = json.loads(line.decode("utf-8"))  # strict: a lone surrogate would not have encoded
    assert set(parsed) <= set(fields) and {n for n, f in fields.items() if f["mode"] == "REQUIRED"} <= set(parsed)
    types = {"STRING": str, "INTEGER": int, "FLOAT": (int, float), "BOOLEAN": bool, "TIMESTAMP": str}
    for name, value in parsed.items():
        kind = fields[name]["type"]
        if value is None:
            assert fields[name]["mode"] != "REQUIRED", name
            continue
        assert isinstance(value, types[kind]) and (kind == "BOOLEAN" or not isinstance(value, bool)), name
        if kind == "FLOAT":
            assert math.isfinite(value), name
        if kind == "TIMESTAMP":
            datetime.datetime.fromisoformat(value)


def test_the_kept_names_manifest_rows_are_what_parquet_and_bigquery_take(job):
    inputs, output = job
    kept = [path for path, folder in inputs.items() if folder]
    table = manifest_table(output, "h1")
    assert table.schema.equals(manifest.pyarrow_schema(), check_metadata=False)
    assert sorted(table["track"].to_pylist()) == sorted(kept * 2)  # the exact names, a row per stem
    _, records = stems_and_records(output)
    for folder, record in records.items():
        for row in manifest.rows(record, f"{output}/{folder}"):  # what the job's BigQuery sink receives
            bigquery_takes(row)


def test_a_list_ends_lines_at_newlines_only_and_a_line_that_is_not_utf8_fails_alone(tmp_path):
    song = write_audio(str(tmp_path / "in" / "line\u2028separator.wav"))
    listing = tmp_path / "list.txt"
    listing.write_bytes(song.encode() + b"\r\n" + str(tmp_path).encode() + b"/in/\xe9t\xe9.wav\n# a comment\n")
    out = run_dofn(ExpandInputs(str(tmp_path / "out")), [("list", str(listing))], ["failed"])
    assert out["main"] == [(os.path.join(tmp_path, "out", os.path.abspath(song).lstrip("/")[:-4]), (song, None))]
    (refused,) = out["failed"]
    assert refused["path"] == f"{tmp_path}/in/\\xe9t\\xe9.wav" and "not UTF-8" in refused["error"]


def test_a_failure_list_line_whose_path_is_not_utf8_text_fails_the_list_naming_the_line(tmp_path):
    listing = tmp_path / "failed.jsonl"
    listing.write_text(json.dumps({"path": "gs://b/a.wav", "output": "gs://b/out/a"}) + "\n"
                       + json.dumps({"path": "gs://b/\udcff.wav", "output": "gs://b/out/x"}) + "\n")
    out = run_dofn(ExpandInputs(str(tmp_path / "out")), [("list", str(listing))], ["failed"])
    (failed,) = out["failed"]
    assert out["main"] == [] and failed["stage"] == "match" and "line 2 is neither" in failed["error"]


def test_a_pattern_output_or_model_that_is_not_utf8_is_refused_before_the_job(tmp_path):
    with pytest.raises(UMXError) as caught:
        run(["--input", f"{tmp_path}/\udcff*.wav", "--output", f"{tmp_path}/out\udcfe", "--model", "umxhq"])
    message = str(caught.value)
    assert f"{tmp_path}/\\xff*.wav: not UTF-8" in message and f"{tmp_path}/out\\xfe: not UTF-8" in message


class Page(HTMLParser):
    """What a browser's DOM holds: every tag, the title, each table's cells by id, the list items."""

    def __init__(self, dom):
        super().__init__(convert_charrefs=True)
        self.tags, self.title, self.cells, self.items = set(), None, {}, []
        self._table, self._open, self._text = None, None, []
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self._table = dict(attrs).get("id") if tag == "table" else self._table
        if tag in ("title", "td", "li"):
            self._open, self._text = tag, []

    def handle_endtag(self, tag):
        if tag == self._open:
            text, self._open = "".join(self._text), None
            if tag == "title" and self.title is None:
                self.title = text
            elif tag == "td":
                self.cells.setdefault(self._table, []).append(text)
            elif tag == "li":
                self.items.append(text)

    def handle_data(self, data):
        if self._open:
            self._text.append(data)


def browser_dom(page, tmp_path):
    """The DOM headless Chromium holds once `page` has loaded and its timers and handlers had 3 s."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is a test dependency (make system-deps installs it)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000"]
    try:
        done = subprocess.run([chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                              timeout=60)
    except subprocess.TimeoutExpired:  # a page that calls alert() waits for a click that never comes
        pytest.fail(f"{page}: the page never finished loading in Chromium: a script ran (alert?)")
    return Page(done.stdout)


def test_the_report_shows_every_name_as_text_runs_no_script_and_says_which_line_it_skipped(job, tmp_path, capsys):
    inputs, output = job
    edited = f"{output}/_failed/edited.jsonl"  # a failure list edited by hand: its line 2 cut short
    stage = "<img src=x onerror=document.title='pwned'> $\\frac{$"  # markup, and mathtext matplotlib cannot parse
    lines = [json.dumps({"path": "gs://b/before.wav", "stage": "decode", "error": "cut"}), '{"path": "gs://b/cu',
             json.dumps({"path": "gs://b/after\u2028.wav", "stage": stage, "error": "<b>bold</b>"})]
    storage.write_bytes(edited, "\n".join(lines).encode())
    try:
        assert report.main([output, "--out", str(tmp_path / "report.html")]) == 0
    finally:
        storage.delete(edited)
    assert f"report: {edited}: line 2 skipped: not JSON" in capsys.readouterr().err
    page = browser_dom(tmp_path / "report.html", tmp_path)
    assert page.title == f"Catalog report: {output}"  # no handler set it
    assert not page.tags & {"img", "script", "b"}  # no name became an element
    kept = sorted(printable(path) for path, folder in inputs.items() if folder)
    assert sorted(page.cells["slowest"][::4]) == kept  # every kept name, shown as text
    refused = [path for path, folder in inputs.items() if not folder] + ["gs://b/before.wav", "gs://b/after\u2028.wav"]
    assert set(page.cells["failures"][::3]) == {printable(path) for path in refused}
    assert stage in page.cells["failures"][1::3] and "<b>bold</b>" in page.cells["failures"][2::3]
    assert page.items == [f"{edited}: line 2 skipped: not JSON"]
    # the check can fail: the same name written as markup does run its handler in this browser
    control = tmp_path / "control.html"
    control.write_text(f"<!doctype html><title>clean</title><p>{KEPT[1]}</p>")
    assert browser_dom(control, tmp_path).title == "pwned"
