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
        (folder / name).write_text(json.dumps({"median": median}))
    return str(folder)


def test_table_replaces_the_block_and_keeps_the_rest(tmp_path):
    five = _model(tmp_path / "demo-5stems", ["vocals", "bass", "drums"], 2.0)
    two = _model(tmp_path / "demo-2stems", ["vocals", "accompaniment"], 1.0)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- demo-table -->\nold\n<!-- /demo-table -->\noutro\n")
    assert demo_table.main([str(readme), five, two]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n") and "old" not in text
    assert "| `demo-5stems` | bass | **6.0** | -7.0 | 11.0 | **4.0** | -9.0 | 9.0 |" in text
    assert "| `demo-5stems` | *mean* | **6.0** | -7.0 | 11.0 | **4.0** | -9.0 | 9.0 |" in text
    assert "*mean*" not in text.split("demo-2stems")[1] and "`0.1.0+abc`" in text
    demo_table.main([str(readme), five, two])
    assert readme.read_text() == text  # idempotent


def test_a_readme_without_the_block_is_an_error(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no table here\n")
    with pytest.raises(UMXError, match="no <!-- demo-table -->"):
        demo_table.update(str(readme), [])
