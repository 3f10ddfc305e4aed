"""The API documentation builds without warnings and every public name has a docstring."""

import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_builder():
    spec = importlib.util.spec_from_file_location("build_api", os.path.join(REPO, "docs", "build_api.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_docs_build_clean(tmp_path):
    builder = load_builder()
    assert builder.build(str(tmp_path)) == []
    for page in ("umx_core.html", "umx_core/stream.html", "training/train.html", "pipelines/catalog.html"):
        assert (tmp_path / page).exists(), page
    page = (tmp_path / "umx_core" / "stream.html").read_text()
    assert "separate_files" in page and "Result" in page and "stage" in page  # the per-track result


def test_a_missing_docstring_is_caught(tmp_path, monkeypatch):
    package = tmp_path / "undocumented_pkg"
    package.mkdir()
    (package / "__init__.py").write_text('"""A package."""\n')
    (package / "mod.py").write_text('"""A module."""\n\n\ndef public():\n    return 1\n\n\n'
                                    'class Thing:\n    """A class."""\n\n    def method(self):\n        return 2\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    builder = load_builder()
    monkeypatch.setattr(builder, "PACKAGES", ("undocumented_pkg",))
    assert sorted(builder.undocumented()) == ["Thing.method in undocumented_pkg.mod", "public in undocumented_pkg.mod"]
