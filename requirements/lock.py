"""Resolve the project's dependencies (with the test extra) on each supported Python and write one
constraints file that pins the whole set for all of them.

    python requirements/lock.py python3.10 python3.11 python3.12 python3.13

Each interpreter's own pip resolves `.[test]` (`pip install --dry-run --report`, nothing is
installed) against the current pins, so a version stays where it is unless it cannot: a pin
that an interpreter cannot use (no wheel, Requires-Python excludes it, or it conflicts with
another) takes, for that interpreter only, the version pip picks there without pins. A package whose version
differs between interpreters gets one line per version with a `python_version` marker. Run it
from the repository root; `make lock` does.
"""

import json
import os
import re
import subprocess
import sys
import tempfile

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

CONSTRAINTS = os.path.join("requirements", "constraints.txt")
HEADER = """\
# The full resolved set of '.[test]' on every supported Python (requirements/lock.py), passed to pip
# as -c so a fresh install resolves the same versions. Regenerate with 'make lock'.
"""
# installed apart from the resolution (Makefile: --no-deps into .venv/reference)
EXCLUDED = {"umx-tf", "openunmix"}
# how pip names a pin it cannot use: no release at all for this Python, or one the resolver must refuse
UNUSABLE_PIN = re.compile(r"(?:Could not find a version that satisfies the requirement |"
                          r"The user requested \(constraint\) |Package ')([A-Za-z0-9._-]+)"
                          r"(?:==|' requires a different Python)")


def read_pins(path=CONSTRAINTS):
    """`[Requirement]` of the constraints file, markers included."""
    with open(path) as f:
        return [Requirement(line) for line in (raw.split("#", 1)[0].strip() for raw in f) if line]


def pins_for(requirements, python_version):
    """`{canonical name: version}` of the pins that apply on `python_version` ("3.12")."""
    env = {"python_version": python_version, "python_full_version": python_version + ".0"}
    pins = {}
    for req in requirements:
        if req.marker is None or req.marker.evaluate(env):
            (spec,) = req.specifier
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def python_version(python):
    """"3.12" for the interpreter `python`; exits naming it when it cannot be run."""
    try:
        out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit(f"{python}: cannot run it ({exc}); name the interpreters with LOCK_PYTHONS=...")
    return out.stdout.strip()


def resolve(python, pins):
    """`({name: version}, replaced pins)`: what `python`'s pip would install for `.[test]`.

    Every package stays pinned exactly, so pip either resolves at once or names a pin it cannot
    use. Then a free resolution on this Python (the newest releases that fit it together) gives
    the replacements: for the named pins and for every pin newer than what that one found, which
    this Python cannot have either. A named pin the free resolution does not change is dropped."""
    replaced = []
    with tempfile.TemporaryDirectory() as tmp:
        constraints, report = os.path.join(tmp, "constraints.txt"), os.path.join(tmp, "report.json")
        # a current pip: older ones stop at a release whose Requires-Python excludes the interpreter
        # instead of trying the one before
        subprocess.run([python, "-m", "venv", os.path.join(tmp, "venv")], check=True)
        pip = [os.path.join(tmp, "venv", "bin", "python"), "-m", "pip"]
        subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], check=True)

        def dry_run(constrained):
            with open(constraints, "w") as f:
                f.writelines(f"{name}=={version}\n" for name, version in constrained.items())
            done = subprocess.run([*pip, "install", "--dry-run", "--ignore-installed", "--report", report,
                                   "-c", constraints, ".[test]"], capture_output=True, text=True)
            if done.returncode:
                return None, done.stdout + done.stderr
            with open(report) as f:
                installs = json.load(f)["install"]
            # a local version label (torch's +cpu file) is where the wheel came from, not the release
            return {item["metadata"]["name"]: item["metadata"]["version"].split("+")[0] for item in installs}, ""

        pins, free = dict(pins), None
        while True:
            resolved, errors = dry_run(pins)
            if resolved is not None:
                break
            names = sorted({canonicalize_name(name) for name in UNUSABLE_PIN.findall(errors)} & set(pins))
            if not names:
                sys.exit(f"{python}: pip could not resolve .[test]:\n{errors[-4000:]}")
            if free is None:
                free, errors = dry_run({})
                if free is None:
                    sys.exit(f"{python}: pip could not resolve .[test] even without pins:\n{errors[-4000:]}")
                free = {canonicalize_name(name): version for name, version in free.items()}
                # a pin newer than the newest release that fits this Python cannot be used here:
                # move all of those at once instead of one pip run each
                names = sorted({*names, *(name for name in pins if name in free
                                          and Version(free[name]) < Version(pins[name]))})
            for name in names:
                replaced.append(f"{name} {pins[name]} -> {free.get(name, 'unpinned')}")
                if free.get(name, pins[name]) == pins[name]:
                    del pins[name]
                else:
                    pins[name] = free[name]
    return {name: v for name, v in resolved.items() if canonicalize_name(name) not in EXCLUDED}, replaced


def marker(group, versions):
    """The shortest `python_version` marker for `group`, a run of the sorted `versions`."""
    first, last = versions.index(group[0]), versions.index(group[-1])
    if group != versions[first:last + 1]:
        return " or ".join(f'python_version == "{v}"' for v in group)
    lower = f'python_version >= "{group[0]}"' if first > 0 else None
    upper = f'python_version < "{versions[last + 1]}"' if last + 1 < len(versions) else None
    return " and ".join(part for part in (lower, upper) if part)


def merge(resolutions):
    """Constraint lines from `{python_version: {name: version}}`: one line where all agree, else one
    line per version with a marker. An interpreter without the package counts with its neighbour."""
    versions = sorted(resolutions, key=lambda v: tuple(map(int, v.split("."))))
    names = {}
    for resolved in resolutions.values():
        for name in resolved:
            names.setdefault(canonicalize_name(name), name)
    lines = []
    for key in sorted(names, key=str.lower):
        found = [next((v for n, v in resolutions[py].items() if canonicalize_name(n) == key), None)
                 for py in versions]
        filled = list(found)
        for i in range(len(filled)):  # forward, then backward, fill of "don't care" interpreters
            filled[i] = filled[i] or (filled[i - 1] if i else None)
        for i in reversed(range(len(filled) - 1)):
            filled[i] = filled[i] or filled[i + 1]
        if len(set(filled)) == 1:
            lines.append(f"{names[key]}=={filled[0]}")
            continue
        for pin in dict.fromkeys(filled):
            group = [py for py, v in zip(versions, filled) if v == pin]
            lines.append(f"{names[key]}=={pin}; {marker(group, versions)}")
    for line in lines:
        Requirement(line)  # raises on a line pip could not read
    return lines


def main(pythons):
    current = read_pins()
    resolutions = {}
    for python in pythons:
        version = python_version(python)
        resolved, replaced = resolve(python, pins_for(current, version))
        print(f"{python} ({version}): {len(resolved)} packages"
              + (f"; pins this Python cannot use: {', '.join(replaced)}" if replaced else ""), file=sys.stderr)
        resolutions[version] = resolved
    with open(CONSTRAINTS + ".new", "w") as f:
        f.write(HEADER + "".join(line + "\n" for line in merge(resolutions)))
    os.replace(CONSTRAINTS + ".new", CONSTRAINTS)


if __name__ == "__main__":
    main(sys.argv[1:] or [sys.executable])
