"""The docs stay true to the code: every setting, ``runworkers`` flag, signal,
check id and lifecycle transition appears in ``docs/``, and nothing else does.

The expected sets are read from the code (the settings dataclass, the
command's parser, the signal module, the status table), never typed here.
"""

import ast
import dataclasses
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import load_command_class
from django.core.management.base import BaseCommand
from django.dispatch import Signal

import django_bgjobs
from django_bgjobs import conf, signals, status

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "django_bgjobs"


def read(name):
    return (DOCS / name).read_text(encoding="utf-8")


def section(text, heading):
    """Return the text under the Markdown heading line ``heading``."""
    start = text.index(heading + "\n") + len(heading) + 1
    following = re.search(r"^#{1,3} ", text[start:], re.MULTILINE)
    return text[start : start + following.start()] if following else text[start:]


# -- settings -----------------------------------------------------------------

SETTING_ROW = re.compile(
    r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*`(.+?)`\s*\|\s*`(.+?)`\s*\|", re.MULTILINE
)


def documented_settings():
    rows = SETTING_ROW.findall(read("reference/settings.md"))
    return {name: (kind.replace("\\|", "|"), default) for name, kind, default in rows}


def type_name(annotation):
    if isinstance(annotation, str):
        return annotation
    return getattr(annotation, "__name__", str(annotation))


def test_settings_reference_lists_exactly_the_settings_fields():
    fields = {field.name for field in dataclasses.fields(conf.Settings)}
    documented = set(documented_settings())
    assert fields - documented == set(), "missing from docs/reference/settings.md"
    assert documented - fields == set(), "documented but not in conf.Settings"


def test_settings_reference_gives_each_type_and_default():
    documented = documented_settings()
    for field in dataclasses.fields(conf.Settings):
        kind, default = documented[field.name]
        assert kind == type_name(field.type), field.name
        if field.default_factory is not dataclasses.MISSING:
            assert ast.literal_eval(default) == field.default_factory(), field.name
        else:
            assert ast.literal_eval(default) == field.default, field.name


# -- runworkers ---------------------------------------------------------------


def long_options(parser):
    return {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--")
    }


def runworkers_options():
    command = load_command_class("django_bgjobs", "runworkers")
    own = long_options(command.create_parser("manage.py", "runworkers"))
    # Django's standard options (--settings, --verbosity, --skip-checks, ...).
    standard = long_options(BaseCommand().create_parser("manage.py", "base"))
    return own - standard


def test_runworkers_reference_lists_exactly_the_commands_options():
    options = runworkers_options()
    assert options, "runworkers has no options of its own?"
    text = read("reference/runworkers.md")
    documented = set(re.findall(r"^### `(--[a-z][a-z0-9-]*)", text, re.MULTILINE))
    assert options - documented == set(), "missing from docs/reference/runworkers.md"
    assert documented - options == set(), "documented but runworkers has no such flag"


# -- signals ------------------------------------------------------------------


def defined_signals():
    return {name for name, value in vars(signals).items() if isinstance(value, Signal)}


def _signal_name(func):
    if isinstance(func, ast.Attribute) and func.attr == "send":
        target = func.value
        if isinstance(target, ast.Attribute):
            return target.attr
        if isinstance(target, ast.Name):
            return target.id
    return None


def _dict_keys_by_name(function):
    keys = {}
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Dict)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            keys[node.targets[0].id] = {
                key.value for key in node.value.keys if isinstance(key, ast.Constant)
            }
    return keys


def sent_arguments():
    """Map each signal to the keyword arguments of its ``send()`` calls."""
    names = defined_signals()
    sent = {name: set() for name in names}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            dicts = _dict_keys_by_name(function)
            for call in ast.walk(function):
                if not isinstance(call, ast.Call):
                    continue
                name = _signal_name(call.func)
                if name not in names:
                    continue
                for keyword in call.keywords:
                    if keyword.arg is not None:
                        sent[name].add(keyword.arg)
                    elif isinstance(keyword.value, ast.Name):
                        sent[name] |= dicts.get(keyword.value.id, set())
    return sent


def documented_signals():
    text = read("reference/signals.md")
    return set(re.findall(r"^## `(\w+)`$", text, re.MULTILINE)), text


def test_signals_reference_lists_exactly_the_defined_signals():
    defined = defined_signals()
    documented, _ = documented_signals()
    assert defined, "django_bgjobs.signals defines no Signal?"
    assert defined - documented == set(), "missing from docs/reference/signals.md"
    assert documented - defined == set(), "documented but not in signals.py"


def test_signals_reference_lists_the_arguments_each_signal_is_sent_with():
    _, text = documented_signals()
    for name, arguments in sent_arguments().items():
        rows = section(text, f"## `{name}`")
        documented = set(re.findall(r"^\|\s*`(\w+)`\s*\|", rows, re.MULTILINE))
        assert "sender" in documented, name
        assert arguments - documented == set(), f"{name}: arguments not documented"
        stale = documented - arguments - {"sender"}
        assert stale == set(), f"{name}: documented but never sent"


# -- checks -------------------------------------------------------------------


def check_ids_in_code():
    ids = set()
    for path in PACKAGE.rglob("*.py"):
        ids |= set(re.findall(r"bgjobs\.[EW]\d{3}", path.read_text(encoding="utf-8")))
    return ids


def test_checks_reference_lists_exactly_the_check_ids():
    ids = check_ids_in_code()
    assert ids, "no check id found in django_bgjobs/"
    text = read("reference/checks.md")
    documented = set(re.findall(r"^## `(bgjobs\.[EW]\d{3})`$", text, re.MULTILINE))
    assert ids - documented == set(), "missing from docs/reference/checks.md"
    assert documented - ids == set(), "documented but no such check id in the code"


# -- lifecycle ----------------------------------------------------------------

EDGE = re.compile(r"^\s*(\w+)\s*-->\s*(\w+)\s*:\s*(\w+)\s*$")


def mermaid_lines():
    text = read("explanation/lifecycle.md")
    blocks = re.findall(r"^```mermaid\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, "expected one mermaid block in lifecycle.md"
    assert blocks[0].lstrip().startswith("stateDiagram-v2")
    return blocks[0].splitlines()


def value(member):
    return getattr(member, "value", member)


def test_lifecycle_diagram_has_exactly_the_transitions_of_status_py():
    lines = [line for line in mermaid_lines() if "-->" in line]
    unparsed = [line for line in lines if not EDGE.match(line)]
    assert unparsed == [], "edges must read `source --> target : verb`"
    edges = [EDGE.match(line).groups() for line in lines]
    assert len(edges) == len(set(edges)), "an edge is drawn twice"
    expected = {
        (value(source), value(target), verb)
        for (source, target), verb in status.TRANSITIONS.items()
    }
    assert set(edges) - expected == set(), "in the diagram but not in TRANSITIONS"
    assert expected - set(edges) == set(), "in TRANSITIONS but not in the diagram"


def test_lifecycle_explains_every_status_and_verb():
    text = read("explanation/lifecycle.md")
    terms = set()
    for line in re.findall(r"^(`.+)\n: ", text, re.MULTILINE):
        terms |= set(re.findall(r"`(\w+)`", line))
    statuses = {value(member) for member in status.JobStatus}
    verbs = set(status.TRANSITIONS.values())
    assert statuses - terms == set(), "statuses not explained in lifecycle.md"
    assert verbs - terms == set(), "verbs not explained in lifecycle.md"


# -- Python API ---------------------------------------------------------------

AUTODOC = re.compile(
    r"^\.\. auto(?:function|class|exception|method|attribute|data):: ([\w.]+)$",
    re.MULTILINE,
)


def test_python_api_reference_covers_every_public_name():
    text = read("reference/python-api.md")
    documented = set(re.findall(r"`(\w+)`", text))
    documented |= {target.rpartition(".")[2] for target in AUTODOC.findall(text)}
    missing = set(django_bgjobs.__all__) - documented
    assert missing == set(), "public names missing from python-api.md"


def test_python_api_autodoc_targets_exist():
    targets = AUTODOC.findall(read("reference/python-api.md"))
    assert targets, "no autodoc directive in python-api.md"
    for target in targets:
        module_name, _, attribute = target.rpartition(".")
        module = importlib.import_module(module_name)
        assert hasattr(module, attribute), target


# -- the build ----------------------------------------------------------------


@pytest.mark.slow
def test_docs_build_offline_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert build.returncode == 0, build.stderr
    assert (tmp_path / "html" / "index.html").exists()
