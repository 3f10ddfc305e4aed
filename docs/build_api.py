"""Build the API documentation from the docstrings: `make docs` writes HTML to docs/api/.

Fails (exit code 1) on any pdoc warning, such as a reference or an `__all__` entry that does
not resolve, and on a public module, class, function or method without a docstring.

    .venv/bin/python docs/build_api.py [OUTPUT_DIR]
"""

import importlib
import os
import pathlib
import pkgutil
import sys
import warnings

PACKAGES = ("umx_core", "training", "pipelines")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def modules():
    """Every public module of the documented packages."""
    out = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        out.append(package)
        for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                out.append(info.name)
    return out


def undocumented():
    """Public names without a docstring, as `qualname in module`."""
    import pdoc.doc

    missing = []
    for name in modules():
        module = pdoc.doc.Module(importlib.import_module(name))
        if not module.docstring:
            missing.append(f"module {name}")
        for member in module.own_members:
            if member.name.startswith("_") or not isinstance(member, (pdoc.doc.Function, pdoc.doc.Class)):
                continue
            if not member.docstring:
                missing.append(f"{member.qualname} in {name}")
            if isinstance(member, pdoc.doc.Class):
                missing.extend(f"{member.qualname}.{sub.name} in {name}" for sub in member.own_members
                               if isinstance(sub, pdoc.doc.Function) and not sub.name.startswith("_")
                               and not sub.docstring)
    return missing


def build(output):
    """Write the HTML documentation; returns the problems found (empty when all is well)."""
    import pdoc

    import umx_core

    for name in umx_core.__all__:  # resolve the lazily imported public names for pdoc
        getattr(umx_core, name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # packages bring their submodules, except umx_core, whose __all__ lists only the public API:
        # its own modules and subpackages are named one by one (a subpackage brings its modules)
        specs = [m for m in modules() if m.startswith("umx_core") and m.count(".") <= 1]
        specs += [p for p in PACKAGES if p != "umx_core"]
        pdoc.pdoc(*specs, output_directory=pathlib.Path(output))
    problems = [f"pdoc: {w.message}" for w in caught if issubclass(w.category, UserWarning)]
    return problems + [f"no docstring: {m}" for m in undocumented()]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    output = argv[0] if argv else os.path.join(REPO, "docs", "api")
    problems = build(output)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"API documentation in {output}/index.html" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
