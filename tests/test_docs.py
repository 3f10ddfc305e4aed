"""The documentation against the repository: what the docs link to, the commands, modules, paths
and facts they state, and the doc sections code comments point to, all exist and agree.

Each check is a function from text to a list of problems, run on the real docs and, in
`test_each_check_finds_what_it_is_for`, on text that is wrong in the way it looks for.
"""

import glob
import importlib.util
import json
import os
import re
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md", "CONTRIBUTING.md", "infra/README.md"] + sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "*.md")))
CODE_PACKAGES = ("umx_core", "pipelines", "training", "bench")
DEMO_MODELS = ("demo-5stems", "demo-2stems")
README_LINES = 200


def read(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return f.read()


# --- markdown ----------------------------------------------------------------------------------
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
INLINE = re.compile(r"(`+)(.+?)\1", re.S)


def fenced_blocks(text):
    """The contents of the fenced code blocks."""
    return [block.split("\n", 1)[1] if "\n" in block else "" for block in (m.group(0) for m in FENCE.finditer(text))]


def inline_code(text):
    """The inline code spans outside fenced blocks."""
    return [m.group(2).strip() for m in INLINE.finditer(FENCE.sub("", text))]


def prose(text):
    """The text without code (fenced or inline)."""
    return INLINE.sub("", FENCE.sub("", text))


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def headings(text):
    """Heading texts, outside fenced blocks, in order."""
    return [m.group(2).strip() for m in re.finditer(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", FENCE.sub("", text), re.M)]


def anchors(text):
    """Every anchor GitHub gives the headings of `text` (duplicates get -1, -2, ...)."""
    seen, out = {}, set()
    for heading in headings(text):
        base = slug(heading)
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


# --- 1. links ----------------------------------------------------------------------------------
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def link_problems(doc, text, root=REPO):
    """Relative links of `doc` (a path relative to `root`) that leave the repository, name nothing,
    or name a heading the target does not have."""
    problems = []
    for target in LINK.findall(prose(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(root, os.path.dirname(doc), path)) if path else \
            os.path.join(root, doc)
        if os.path.commonpath([resolved, os.path.abspath(root)]) != os.path.abspath(root):
            problems.append(f"{doc}: {target} leaves the repository")
            continue
        if not os.path.exists(resolved):
            problems.append(f"{doc}: {target} names no file or folder")
            continue
        if anchor:
            if not resolved.endswith(".md"):
                problems.append(f"{doc}: {target}: an anchor into a file that is not markdown")
                continue
            with open(resolved, encoding="utf-8") as f:
                if anchor not in anchors(f.read()):
                    problems.append(f"{doc}: {target}: no such heading in {os.path.relpath(resolved, root)}")
    return problems


@pytest.mark.parametrize("doc", DOCS)
def test_links_resolve_inside_the_repository(doc):
    assert not link_problems(doc, read(doc))


def test_the_front_doors_link_somewhere():
    assert len(LINK.findall(prose(read("README.md")))) >= 5
    assert LINK.findall(prose(read("CONTRIBUTING.md")))


# --- 2. make targets ---------------------------------------------------------------------------
def makefile_targets(text):
    """Target names of a Makefile's rules (pattern rules keep their %)."""
    targets = set()
    for line in text.splitlines():
        if not line or line[0] in " \t#":
            continue
        match = re.match(r"^([^:=#]+?)\s*:(?![=:])", line)
        if match:
            targets.update(match.group(1).split())
    return targets


def make_commands(text):
    """The targets of every `make ...` command in the code (fenced or inline) of a doc."""
    named = []
    lines = [line.split("#", 1)[0] for block in fenced_blocks(text) for line in block.splitlines()]
    for line in lines + inline_code(text):
        for match in re.finditer(r"(?<![\w./-])make((?:[ \t]+[^\s;&|#`)]+)*)", line):
            words = match.group(1).split()
            named += [w for w in words if not w.startswith("-") and "=" not in w]
    return named


def make_problems(doc, text, makefile):
    targets = makefile_targets(makefile)
    patterns = [re.compile("^" + re.escape(t).replace("%", ".+") + "$") for t in targets if "%" in t]
    return [f"{doc}: make {name}: no such target in the Makefile" for name in make_commands(text)
            if name not in targets and not any(p.match(name) for p in patterns)]


@pytest.mark.parametrize("doc", DOCS)
def test_make_targets_exist(doc):
    assert not make_problems(doc, read(doc), read("Makefile"))


def test_the_docs_name_make_commands():
    assert {"example", "test", "venv", "lock", "demo-models"} <= set(
        name for doc in DOCS for name in make_commands(read(doc)))


# --- 3. python -m MODULE, python FILE.py ---------------------------------------------------------
def declared_distributions():
    """Names the project's pyproject.toml declares as dependencies (e.g. pytest), normalised."""
    text = read("pyproject.toml")
    return {m.lower().replace("-", "_") for m in re.findall(r"^\s*\"([A-Za-z0-9_.-]+)", text, re.M)}


def module_problem(name):
    """Why `python -m name` would not run here, or None: it must be the repository's module, a
    standard library module, or one of the declared dependencies (found without importing it:
    `find_spec` imports only the parent packages, which are light here)."""
    top = name.split(".")[0]
    if top in sys.stdlib_module_names:
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:
        return f"cannot be found ({exc})"
    if spec is None:
        return "no such module"
    inside = spec.origin and os.path.realpath(spec.origin).startswith(os.path.realpath(REPO) + os.sep)
    if not inside and top.lower() not in declared_distributions():
        return f"not the repository's, the standard library's or a declared dependency ({spec.origin})"
    if spec.submodule_search_locations is not None and importlib.util.find_spec(name + ".__main__") is None:
        return "a package without __main__"
    return None


IMAGE_ROOT = "/opt/umx/"  # the repository inside the worker image (infra/dataflow/Dockerfile)


def python_problems(doc, text):
    problems = []
    for name in re.findall(r"python[\d.]*[ \t]+-m[ \t]+([A-Za-z_][\w.]*)", text):
        why = module_problem(name)
        if why:
            problems.append(f"{doc}: python -m {name}: {why}")
    for script in re.findall(r"python[\d.]*[ \t]+([\w./-]+\.py)\b", text):
        local = script[len(IMAGE_ROOT):] if script.startswith(IMAGE_ROOT) else script
        if not os.path.isfile(os.path.join(REPO, local)):
            problems.append(f"{doc}: python {script}: no such file in the repository")
    return problems


@pytest.mark.parametrize("doc", DOCS)
def test_python_modules_and_scripts_exist(doc):
    assert not python_problems(doc, read(doc))


def test_the_docs_name_the_commands():
    text = "\n".join(read(doc) for doc in DOCS)
    for name in ("pipelines.separate_catalog", "pipelines.template", "training.train", "training.demo_table"):
        assert f"python -m {name}" in text, name


# --- 4. facts from files ---------------------------------------------------------------------
PROFILES = {os.path.basename(p)[:-5]: p for p in glob.glob(os.path.join(REPO, "training", "profiles", "*.json"))}
# how the docs state a model's size: "`demo-5stems` ... n_fft 2048, hop 1024, hidden 96, 2 layers"
STFT = re.compile(r"`([\w-]+)`[^\n]*?\bn_fft (\d+), hop (\d+), hidden (\d+)(?:, (\d+) layers)?")


def model_facts(name):
    """`{n_fft, n_hop, hidden_size, nb_layers}` of a training profile, checked against the shipped
    model of that name where there is one."""
    with open(PROFILES[name]) as f:
        profile = json.load(f)
    facts = {key: profile[key] for key in ("n_fft", "n_hop", "hidden_size", "nb_layers")}
    shipped = os.path.join(REPO, "umx_core", "models", name, "separator.json")
    if os.path.exists(shipped):
        with open(shipped) as f:
            saved = json.load(f)
        assert (saved["n_fft"], saved["n_hop"], saved["training"]["hidden_size"], saved["training"]["nb_layers"]) == \
            tuple(facts.values()), f"{name}: the shipped model is not its profile"
    return facts


def stft_statements(text):
    """`[(model, n_fft, hop, hidden, layers or None)]` a doc states in the form `STFT` parses."""
    return [(m[0], int(m[1]), int(m[2]), int(m[3]), int(m[4]) if m[4] else None) for m in STFT.findall(text)]


def stft_problems(doc, text):
    problems = []
    for name, n_fft, hop, hidden, layers in stft_statements(text):
        if name not in PROFILES:
            continue  # a published model: its STFT is the registry's (below)
        facts = model_facts(name)
        stated = {"n_fft": n_fft, "n_hop": hop, "hidden_size": hidden, "nb_layers": layers or facts["nb_layers"]}
        wrong = {k: (v, facts[k]) for k, v in stated.items() if v != facts[k]}
        if wrong:
            problems.append(f"{doc}: {name}: stated, actual: {wrong}")
    for name, n_fft, hop in re.findall(r"`(umx\w*)`[^\n]*?\bn_fft (\d+), hop (\d+)", text):
        published = registry_published()
        if name in published and (int(n_fft), int(hop)) != published[name]:
            problems.append(f"{doc}: {name}: n_fft {n_fft}, hop {hop}; the registry has {published[name]}")
    return problems


def registry_published():
    """`{name: (n_fft, n_hop)}` of the published models (`umx_core.registry`: no TensorFlow)."""
    from umx_core import registry

    return {name: (m.n_fft, m.n_hop) for name, m in registry.PUBLISHED.items()}


@pytest.mark.parametrize("doc", DOCS)
def test_stated_model_sizes_are_the_profiles(doc):
    assert not stft_problems(doc, read(doc))


def test_the_model_docs_state_every_profile():
    for doc, names in (("docs/models.md", DEMO_MODELS), ("docs/training.md", tuple(PROFILES))):
        stated = {s[0] for s in stft_statements(read(doc))}
        assert set(names) <= stated, f"{doc} does not state {set(names) - stated}"


def default_model_problems(doc, text):
    """Models a doc calls the default that are not `umx_core.settings.SETTINGS["model"].default`."""
    from umx_core.settings import SETTINGS

    default = SETTINGS["model"].default
    named = re.findall(r"`([\w.-]+)`\s*\(default\)", text) + re.findall(r"`([\w.-]+)`\s*\(the default model\)", text)
    named += re.findall(r"default model,?\s*`([\w.-]+)`", text)
    return [f"{doc}: calls {name} the default model; it is {default}" for name in named if name != default]


@pytest.mark.parametrize("doc", DOCS)
def test_the_default_model_is_the_settings_default(doc):
    assert not default_model_problems(doc, read(doc))


def test_the_readme_names_the_default_model():
    assert re.search(r"`[\w.-]+`\s*\(default\)", read("README.md"))


def evaluation(name, split):
    with open(os.path.join(REPO, "umx_core", "models", name, f"evaluation{split}.json")) as f:
        return json.load(f)["median"]["model"]


def readme_score_problems(text):
    """The README's one line per demo model must give its out-of-distribution medians as the
    shipped `evaluation-ood.json` has them (one decimal; a mean over more than two targets)."""
    problems = []
    for name in DEMO_MODELS:
        lines = [line for line in text.splitlines() if f"`{name}`" in line and "out-of-distribution" in line]
        if len(lines) != 1:
            problems.append(f"README: {len(lines)} lines give {name}'s out-of-distribution score, not one")
            continue
        medians = {t: v["SDR"] for t, v in evaluation(name, "-ood").items()}
        stated = dict(re.findall(r"\b(\w+) (-?\d+\.\d)\b", lines[0].split("out-of-distribution", 1)[1]))
        expected = {t: f"{v:.1f}" for t, v in medians.items()}
        if len(medians) > 2:
            expected["mean"] = f"{sum(medians.values()) / len(medians):.1f}"
        wrong = {t: (stated.get(t), v) for t, v in expected.items() if stated.get(t) not in (None, v)}
        if wrong or not set(stated) & set(expected):
            problems.append(f"README: {name}: stated, shipped: {wrong or 'no score'}")
    return problems


def test_the_readme_scores_are_the_shipped_models():
    assert not readme_score_problems(read("README.md"))


def demo_table_problems(docs):
    """The text between the demo-table markers must be what `python -m training.demo_table` writes
    from the shipped models (one doc holds it)."""
    from training import demo_table

    holders = [doc for doc in docs if demo_table.START in read(doc)]
    if len(holders) != 1:
        return [f"the demo table's markers are in {holders or 'no doc'}, not in one"]
    text = read(holders[0])
    table = text.split(demo_table.START, 1)[1].split(demo_table.END, 1)[0].strip()
    shipped = demo_table.table([os.path.join(REPO, "umx_core", "models", name) for name in DEMO_MODELS])
    return [] if table == shipped else [f"{holders[0]}: the demo table is not the shipped models' scores"]


def test_the_demo_table_is_the_shipped_models_scores():
    assert not demo_table_problems(DOCS)


# --- 5. the README -----------------------------------------------------------------------------
def readme_problems(text):
    problems = []
    lines = text.splitlines()
    if len(lines) > README_LINES:
        problems.append(f"README.md has {len(lines)} lines, more than {README_LINES}")
    body = [line for line in lines if line.strip()]
    if not body or not body[0].startswith("# "):
        problems.append("README.md does not open with its title")
    block = body[1:5]
    if len(block) < 4 or block[0] != "```" or block[3] != "```" or not block[1].startswith("make example ") \
            or not block[2].startswith("make test "):
        problems.append("README.md does not open with `make example` and `make test` in one code block")
    if "../" in "".join(LINK.findall(prose(text))):
        problems.append("README.md links outside the repository")
    return problems


def test_the_readme_is_a_front_door():
    assert not readme_problems(read("README.md"))


# --- 6. code comments that point to docs sections --------------------------------------------
POINTER = re.compile(r"(docs/[\w-]+\.md|README\.md|CONTRIBUTING\.md),\s*(?:#\s*)?\"([^\"\n]+)\"")


def code_pointers():
    """`[(file, doc, heading)]` of every `docs/X.md, "Heading"` in the code."""
    found = []
    for package in CODE_PACKAGES:
        for path in glob.glob(os.path.join(REPO, package, "**", "*.py"), recursive=True):
            with open(path, encoding="utf-8") as f:
                found += [(os.path.relpath(path, REPO), doc, heading) for doc, heading in POINTER.findall(f.read())]
    return found


def pointer_problems(pointers):
    problems = []
    for source, doc, heading in pointers:
        if not os.path.exists(os.path.join(REPO, doc)):
            problems.append(f"{source}: {doc} does not exist")
        elif heading not in headings(read(doc)):
            problems.append(f"{source}: {doc} has no heading {heading!r}")
    return problems


def test_code_comments_point_to_headings_that_exist():
    pointers = code_pointers()
    assert pointers, "no code comment points to a docs section: the pattern no longer matches"
    assert not pointer_problems(pointers)


BENCHMARK_HEADINGS = ("Separator speed", "EM in two halves", "Peak memory", "Training step", "Besides the steps",
                      "BSS Eval", "Training input")


def test_benchmarks_keep_the_headings_code_points_to():
    """Sections code comments name; kept as `## ` or `### ` headings."""
    text = FENCE.sub("", read("docs/benchmarks.md"))
    present = set(re.findall(r"^#{2,3} (.+?)\s*$", text, re.M))
    assert not set(BENCHMARK_HEADINGS) - present
    assert "Scored only where each part sounds" in headings(read("docs/models.md"))


def test_every_benchmark_script_has_its_section():
    text = read("docs/benchmarks.md")
    scripts = [os.path.basename(p) for p in glob.glob(os.path.join(REPO, "bench", "*.py"))
               if os.path.basename(p) != "common.py"]
    assert scripts and not [s for s in scripts if f"bench/{s}" not in text]


# --- paths and names the docs give ------------------------------------------------------------
TOP = ("umx_core", "pipelines", "training", "bench", "tests", "infra", "examples", "requirements", "docs")


def path_problems(doc, text):
    """Repository paths in a doc's inline code (`umx_core/settings.py`, `tests/...::test`,
    globs) that match nothing."""
    problems = []
    for span in inline_code(text):
        for token in span.split():
            token = token.split("::", 1)[0].rstrip(".,;:)")
            if "/" not in token or token.split("/", 1)[0] not in TOP or re.search(r"[<>{}$]|\.\.\.", token):
                continue
            if any(re.fullmatch(r"[A-Z][A-Z0-9_]*", part) for part in token.split("/")):
                continue  # a placeholder: umx_core/models/NAME/
            if token.startswith("docs/api"):
                continue  # built by `make docs`, not committed
            if not glob.glob(os.path.join(REPO, token)):
                problems.append(f"{doc}: {token}: no such path")
    return problems


def dotted_name_problems(doc, text):
    """Dotted names of the packages in a doc's inline code (`umx_core.cli.console.quiet_tensorflow`)
    whose module does not exist or does not define the name. Read from the source, not imported."""
    problems = []
    for span in inline_code(text):
        for name in re.findall(r"^((?:umx_core|pipelines|training)(?:\.\w+)+)(?:\(.*\))?$", span.strip()):
            parts = name.split(".")
            origin = None
            for cut in range(len(parts), 0, -1):  # the longest prefix that is a module file or package
                base = os.path.join(REPO, *parts[:cut])
                for candidate in (base + ".py", os.path.join(base, "__init__.py")):
                    if os.path.isfile(candidate):
                        origin, module, rest = candidate, ".".join(parts[:cut]), parts[cut:]
                        break
                if origin:
                    break
            if origin is None:
                problems.append(f"{doc}: {name}: no such module")
                continue
            with open(origin, encoding="utf-8") as f:
                source = f.read()
            for part in rest:
                defined = rf"(?:def|class)\s+{part}\b|^\s*{part}\s*[:=]|[\"']{part}[\"']|import\b[^\n]*\b{part}\b"
                if not re.search(defined, source, re.M):
                    problems.append(f"{doc}: {name}: {module} does not define {part}")
                    break
    return problems


@pytest.mark.parametrize("doc", DOCS)
def test_paths_and_names_the_docs_give_exist(doc):
    text = read(doc)
    assert not path_problems(doc, text) + dotted_name_problems(doc, text)


# --- the checks themselves ---------------------------------------------------------------------
BAD = {
    "link": (lambda t: link_problems("docs/x.md", t), "[a](../../outside.md) [b](nothing.md) [c](models.md#no-such)"),
    "make": (lambda t: make_problems("x.md", t, read("Makefile")), "run `make tests` or `make demo-model-5stems`"),
    "module": (lambda t: python_problems("x.md", t), "python -m pipelines.no_such_job; python bench/none.py"),
    "stft": (lambda t: stft_problems("x.md", t), "| `demo-2stems` | n_fft 2048, hop 512, hidden 64, 2 layers |"),
    "default": (lambda t: default_model_problems("x.md", t), "| `umxhq` (default) | ..."),
    "scores": (readme_score_problems, "| `demo-5stems` | out-of-distribution SDR: mean 9.9 dB |\n"
                                      "| `demo-2stems` | out-of-distribution SDR: vocals 6.0, accompaniment 1.2 dB |"),
    "readme": (readme_problems, "# t\n\n```\nmake test\nmake example\n```\n" + "x\n" * 200),
    "pointer": (lambda t: pointer_problems([("x.py", "docs/benchmarks.md", t)]), "A heading nobody wrote"),
    "path": (lambda t: path_problems("x.md", t), "`umx_core/gcs.py` and `tests/umx_core/test_cli.py::test_x`"),
    "name": (lambda t: dotted_name_problems("x.md", t), "`umx_core.console.quiet_tensorflow` `umx_core.stream.Nothing`"),
}


@pytest.mark.parametrize("check", sorted(BAD))
def test_each_check_finds_what_it_is_for(check):
    run, text = BAD[check]
    assert run(text), f"the {check} check passed text it is meant to refuse"


def test_the_demo_table_check_finds_a_stale_table(tmp_path, monkeypatch):
    doc = tmp_path / "stale.md"
    doc.write_text("<!-- demo-table -->\n| old |\n<!-- /demo-table -->\n")
    assert demo_table_problems([str(doc)])
    assert demo_table_problems([])  # no doc holds it


def test_slugs_are_githubs():
    assert slug("The `umx` command on a long file") == "the-umx-command-on-a-long-file"
    assert slug("Cost and time for 1,000 hours of audio") == "cost-and-time-for-1000-hours-of-audio"
    assert anchors("# A\n## A\n") == {"a", "a-1"}
