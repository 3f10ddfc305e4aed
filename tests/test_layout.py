"""The shape of the house: small modules, data flowing one way, and no module's private names used outside it."""

import ast
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("umx_core", "pipelines", "training")


def python_files(*folders):
    for folder in folders:
        for root, _, files in os.walk(os.path.join(REPO, folder)):
            yield from (os.path.join(root, f) for f in files if f.endswith(".py"))


def module_name(path):
    rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def project_imports(tree, here):
    """`(module, names, node)` for every import of a project module in `tree` (relative ones resolved)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    yield alias.name, [], node
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                module = ".".join(here.split(".")[: -node.level] + ([module] if module else []))
            if module.split(".")[0] in PACKAGES:
                yield module, [a.name for a in node.names], node


def private(name):
    return name.startswith("_") and not name.startswith("__")


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_over_300_lines(package):
    long = {os.path.relpath(p, REPO): n for p in python_files(package)
            if (n := sum(1 for _ in open(p))) > 300}
    assert not long, long


def test_data_flows_one_way_and_the_core_has_no_beam():
    """pipelines -> umx_core <- training: the core imports neither, training never imports pipelines."""
    wrong = []
    for path in python_files(*PACKAGES):
        here = module_name(path)
        tree = ast.parse(open(path).read())
        imported = {m.split(".")[0] for m, _, _ in project_imports(tree, here)}
        imported |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        top = here.split(".")[0]
        forbidden = {"umx_core": {"pipelines", "training", "apache_beam"}, "training": {"pipelines"}}.get(top, set())
        wrong += [(here, name) for name in imported & forbidden]
    assert not wrong, wrong


def test_nothing_outside_a_module_uses_its_private_names():
    """No `from module import _name` and no `module._name` across modules: code, tests and
    benchmarks use what the module offers."""
    offenders = []
    for path in python_files(*PACKAGES, "tests", "bench"):
        here = module_name(path)
        tree = ast.parse(open(path).read())
        aliases = {}
        for module, names, node in project_imports(tree, here):
            offenders += [(here, f"{module}.{n}") for n in names if private(n) and module != here]
            if isinstance(node, ast.Import):
                for alias in node.names:
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                        alias.name.split(".")[0]
            else:
                for alias in node.names:
                    aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and private(node.attr):
                base = node.value
                parts = []
                while isinstance(base, ast.Attribute):
                    parts.insert(0, base.attr)
                    base = base.value
                if isinstance(base, ast.Name) and base.id in aliases:
                    target = ".".join([aliases[base.id], *parts])
                    if target != here:
                        offenders.append((here, f"{target}.{node.attr}"))
    assert not offenders, sorted(set(offenders))
