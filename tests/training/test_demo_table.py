"""The README table of the demo models, from evaluation files written here."""

import json

import pytest

from training import demo_table
from umx_core.errors import UMXError


def _model(folder, targets, shift):
    folder.mkdir()
    (folder / "separator.json").write_text(json.dumps({"code_version": "0.1.0+abc"}))
    for name, offset in (("evaluation.json", 0.0), ("evaluation-ood.json", shift)):
        median = {m: {t: {"SDR": base + i - offset} for i, t in enumerate(targets)}
                  for m, base in (("model", 5.0), ("mixture", -8.0), ("irm", 10.0))}
        scored = {"model": {t: 9 + i for i, t in enumerate(targets)}}
        (folder / name).write_text(json.dumps({"median": median, "songs": 12, "scored": scored}))
        audible = {"model": {t: {"SDR": 7.0 + i - offset} for i, t in enumerate(targets)}}
        (folder / name.replace(".json", "-audible.json")).write_text(json.dumps({"median": audible}))
    return str(folder)


def test_table_replaces_the_block_and_keeps_the_rest(tmp_path):
    five = _model(tmp_path / "demo-5stems", ["vocals", "bass", "drums"], 2.0)
    two = _model(tmp_path / "demo-2stems", ["vocals", "accompaniment"], 1.0)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- demo-table -->\nold\n<!-- /demo-table -->\noutro\n")
    assert demo_table.main([str(readme), five, two]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n") and "old" not in text
    assert ("| `demo-5stems` | bass | **6.0** | 8.0 | 10 of 12 | -7.0 | 11.0 | **4.0** | 6.0 | 10 of 12 | -9.0 | 9.0 |"
            in text)
    assert "| `demo-5stems` | *mean* | **6.0** | 8.0 |  | -7.0 | 11.0 | **4.0** | 6.0 |  | -9.0 | 9.0 |" in text
    assert "*mean*" not in text.split("demo-2stems")[1] and "`0.1.0+abc`" in text
    demo_table.main([str(readme), five, two])
    assert readme.read_text() == text  # idempotent


def test_a_readme_without_the_block_is_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no table here\n")
    with pytest.raises(UMXError, match="no <!-- demo-table -->"):
        demo_table.update(str(readme), [])


def test_an_evaluation_without_song_counts_says_it_does_not_know(tmp_path):
    folder = tmp_path / "demo-2stems"
    _model(folder, ["vocals", "accompaniment"], 1.0)
    (folder / "evaluation-ood.json").write_text(json.dumps({"median": {
        m: {"vocals": {"SDR": 1.0}, "accompaniment": {"SDR": 2.0}} for m in ("model", "mixture", "irm")}}))
    (folder / "evaluation-ood-audible.json").unlink()
    assert "| `demo-2stems` | vocals | **5.0** | 7.0 | 9 of 12 | -8.0 | 10.0 | **1.0** | n/a | ? | 1.0 | 1.0 |" in \
        demo_table.table([str(folder)])


def test_a_target_without_an_audible_score_leaves_that_mean_unknown(tmp_path):
    folder = tmp_path / "demo-5stems"
    _model(folder, ["vocals", "bass", "drums"], 2.0)
    path = folder / "evaluation-audible.json"
    path.write_text(json.dumps({"median": {"model": {"vocals": {"SDR": 7.0}, "bass": {"SDR": None}}}}))
    assert "| `demo-5stems` | *mean* | **6.0** | n/a |  | -7.0 | 11.0 | **4.0** | 6.0 |" in demo_table.table([str(folder)])
