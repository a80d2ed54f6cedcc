"""docs/installation.md lists the requirements of pyproject.toml, with the same minimum versions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "installation.md"


def _key(text: str) -> tuple[str, frozenset[str], str]:
    """A requirement as compared: its canonical name, its extras and its version specifier."""
    requirement = Requirement(text)
    return canonicalize_name(requirement.name), frozenset(requirement.extras), str(requirement.specifier)


def _pyproject() -> dict[str, set]:
    """The requirements of pyproject.toml: ``""`` for ``[project] dependencies``, then one group per extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"": project["dependencies"], **project.get("optional-dependencies", {})}
    return {group: {_key(text) for text in requirements} for group, requirements in groups.items()}


def _page(text: str) -> dict[str, set]:
    """The requirements the page's tables list (the first cell of a row, in backquotes), grouped by heading.

    The tables under ``## Dependencies`` are the runtime ones; under a heading naming an extra (`` `.[test]` ``),
    that extra's; tables under any other heading are not requirements.
    """
    groups: dict[str, set] = {}
    group = None
    for line in text.splitlines():
        if line.startswith("#"):
            extra = re.search(r"`\.\[([\w-]+)\]`", line)
            group = extra.group(1) if extra else "" if line.strip("# ").lower() == "dependencies" else None
        elif group is not None and (cell := re.match(r"\|\s*`([^`]+)`\s*\|", line)):
            groups.setdefault(group, set()).add(_key(cell.group(1)))
    return groups


def test_page_lists_every_requirement_of_pyproject():
    wanted, listed = _pyproject(), _page(PAGE.read_text())
    for group, requirements in wanted.items():
        where = f"[{group}]" if group else "[project] dependencies"
        missing = requirements - listed.get(group, set())
        assert not missing, f"pyproject.toml {where} has {sorted(missing)}, not listed in {PAGE.name} as such"
        stale = listed.get(group, set()) - requirements
        assert not stale, f"{PAGE.name} lists {sorted(stale)} under {where}, which pyproject.toml does not have"
    assert set(listed) <= set(wanted), f"{PAGE.name} lists extras pyproject.toml lacks: {set(listed) - set(wanted)}"


def test_page_reading_finds_a_missing_or_changed_requirement():
    """The comparison can fail: a row removed, or a minimum version changed, is seen."""
    text = PAGE.read_text()
    assert _page(text) == _pyproject()
    assert _page(text.replace("| `isal>=1.6` |", "| isal |")) != _pyproject()
    assert _page(text.replace("`numba>=0.59`", "`numba>=0.58`")) != _pyproject()
    assert _page(text.replace("`sphinx>=7`", "`sphinx-x>=7`")) != _pyproject()
