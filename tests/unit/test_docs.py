"""The docs stay true: links resolve, quoted parameters equal params.yaml, every `mura` option they
name exists under that name, and the lists they keep match the code that defines them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.doc_blocks import blocks

REPO = Path(__file__).resolve().parents[2]
PAGES = sorted(
    [
        REPO / "README.md",
        REPO / "SECURITY.md",
        REPO / "CONTRIBUTING.md",
        REPO / "infra" / "README.md",
        *(REPO / "docs").glob("*.md"),
    ]
)
GENERATED = {REPO / "docs" / "CLI.md", REPO / "docs" / "TESTING.md"}
README_LINES = 160  # a newcomer reads it in about five minutes
LINK = re.compile(r"\]\(([^)\s]+)\)")
QUOTED_PARAMETER = re.compile(r"`([a-z_]+(?:\.[a-z_]+)+)` = (-?[0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?|`[^`]+`)")
MURA_COMMAND = re.compile(r"\bmura((?: [a-z][a-z-]*)+)((?: +(?:[^\s`|]+))*)")


def _params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_the_readme_is_short_enough_to_read_in_five_minutes():
    lines = (REPO / "README.md").read_text().count("\n")
    assert lines <= README_LINES, f"README.md has {lines} lines; move reference material into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", resolved.read_text(), flags=re.MULTILINE)
            if anchor not in {_slug(heading) for heading in headings}:
                broken.append(target)
    assert not broken, f"{page.name}: links to nothing: {broken}"


def test_parameter_values_quoted_in_the_docs_equal_params_yaml():
    params, wrong = _params(), []
    for page in PAGES:
        for key, quoted in QUOTED_PARAMETER.findall(page.read_text()):
            value: object = params
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is None:
                wrong.append(f"{page.name}: `{key}` is not a parameter of params.yaml")
            elif str(value) != quoted.strip("`") and not _same_number(value, quoted):
                wrong.append(f"{page.name}: `{key}` = {quoted}, params.yaml says {value}")
    assert not wrong, "\n".join(wrong)


def _same_number(value: object, quoted: str) -> bool:
    try:
        return float(value) == float(quoted)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def test_the_live_kappa_alert_fires_at_the_monitor_s_own_threshold():
    threshold = _params()["monitor"]["min_live_kappa"]
    rules = (REPO / "infra" / "prometheus" / "alerts.yml").read_text()
    (expression,) = re.findall(r"expr: .*mura_monitor_live_study_kappa.*< *([0-9.]+)", rules)
    assert float(expression) == threshold, "alerts.yml and params.yaml monitor.min_live_kappa disagree"


def _options_by_command() -> dict[str, tuple[set[str], set[str]]]:
    """Each `mura` command's option strings, and the deprecated ones among them (hidden from help)."""
    import argparse

    from pipelines.cli import build_parser
    from pipelines.cli.reference import _subcommands

    found: dict[str, tuple[set[str], set[str]]] = {}

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        options = {o for action in parser._actions for o in action.option_strings}
        hidden = {
            o for action in parser._actions if action.help == argparse.SUPPRESS for o in action.option_strings
        }
        found[name] = (options, hidden)
        for child, sub in _subcommands(parser).items():
            walk(sub, f"{name} {child}".strip())

    walk(build_parser(), "")
    return found


def test_every_mura_option_the_docs_name_exists_under_that_name():
    """`mura train --arch` in a doc after the option was renamed (or never existed) fails here."""
    commands, wrong = _options_by_command(), []
    for page in PAGES:
        if page in GENERATED:
            continue
        for words, rest in MURA_COMMAND.findall(page.read_text()):
            parts = words.split()
            while parts and " ".join(parts) not in commands:
                parts.pop()
            if not parts:
                continue
            options, hidden = commands[" ".join(parts)]
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest):
                if flag in ("--help",):
                    continue
                if flag not in options:
                    wrong.append(f"{page.name}: `mura {' '.join(parts)} {flag}`: no such option")
                elif flag in hidden:
                    wrong.append(f"{page.name}: `mura {' '.join(parts)} {flag}` is a deprecated name")
    assert not wrong, "\n".join(sorted(set(wrong)))


def test_the_retrain_parameters_the_docs_list_are_the_form_s():
    from pipelines.retrain_form import retrain_form

    fields = [field.name for field in retrain_form("cpu_smoke", ["cpu_smoke"])]
    for page in (REPO / "docs" / "ARCHITECTURE.md", REPO / "docs" / "GUIDE.md"):
        text = page.read_text()
        listed = re.search(
            r"takes\s+`preset`\s+and\s+the\s+optional\s+overrides\s+(.+?)\.\s", text, re.DOTALL
        )
        assert listed, f"{page.name}: the retrain form's field list is gone"
        named = ["preset", *re.findall(r"`([a-z_]+)`", listed.group(1))]
        assert named == fields, f"{page.name} lists {named}; the form has {fields}"


def test_every_block_of_the_clients_guide_is_run_or_checked_by_a_test():
    """The e2e test runs each `run:` block against a live stack and compares each `check:` block with
    its command's output; a block without a marker would go stale unseen."""
    found = blocks(REPO / "docs" / "CLIENTS.md")
    assert found and all(block.kind for block in found), [b.line for b in found if not b.kind]
    assert all(block.language in ("python", "bash") for block in found if block.kind == "run")
