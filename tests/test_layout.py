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


def import_graph(*folders):
    """`{module: {project modules it imports}}`, imports inside functions included; `from pkg import
    mod` counts as an import of `pkg.mod` where that is a module."""
    modules = {module_name(p): p for p in python_files(*folders)}
    graph = {}
    for here, path in modules.items():
        edges = set()
        for module, names, _node in project_imports(ast.parse(open(path).read()), here):
            edges |= {f"{module}.{n}" for n in names if f"{module}.{n}" in modules} or {module}
            edges |= {module} if any(f"{module}.{n}" not in modules for n in names) else set()
        graph[here] = {m for m in edges if m in modules and m != here}
    return graph


def circles(graph):
    """The strongly connected groups of more than one module (Tarjan's algorithm, without recursion)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set(), "c": {"a"}}) == []


def test_no_import_circle_in_the_project():
    """Imports inside functions included: a circle held together by late imports is still a circle."""
    assert circles(import_graph(*PACKAGES)) == []


# umx_core's layers, bottom up: a module imports only from its own layer and those below
UMX_CORE_LAYERS = (
    ("umx_core", "errors", "version", "checks", "settings", "devices", "storage", "audio", "outputs", "analytics"),
    ("nn",),
    ("runtime",),
    ("chunking", "segmenting", "engine"),
    ("families",),
    ("separator", "saved"),
    ("safe_pickle", "safe_zip", "safe_tensors", "torch_tensors", "pth", "convert", "demucs_files", "demucs_bag", "demucs_convert",
     "registry"),
    ("pretrained",),
    ("stream", "streamed_track"),
    ("cli", "__main__"),
)


def layer_of(module):
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "umx_core"
    return next(k for k, layer in enumerate(UMX_CORE_LAYERS) if name in layer)


def test_umx_core_imports_only_downwards():
    graph = import_graph("umx_core")
    upward = sorted((a, b) for a, edges in graph.items() for b in edges if layer_of(b) > layer_of(a))
    assert not upward, upward
