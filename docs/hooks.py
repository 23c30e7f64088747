"""mkdocs hook: the API reference may not hide an undocumented object.

mkdocstrings leaves out a member that has no docstring, silently. For every `::: object` of
docs/api.md this hook checks the object and each member the page shows (its `members:` list, or
else every public method, property and class) for a docstring, and logs a warning naming each
one without: `mkdocs build --strict` then fails. tests/test_docs.py calls `undocumented` too.
"""

from __future__ import annotations

import logging
import re
import textwrap
from pathlib import Path

import yaml

log = logging.getLogger(f"mkdocs.plugins.{__name__}")
API_PAGE = "api.md"
ROOT = Path(__file__).resolve().parent.parent
# `::: dotted.path`, then its indented options block, if any
DIRECTIVE = re.compile(r"^::: ([\w.]+)\n((?:[ \t]+.*\n?)*)", flags=re.M)


def directives(markdown: str) -> list[tuple[str, dict]]:
    """(object path, its mkdocstrings options) of every `:::` directive on a page."""
    found = []
    for path, block in DIRECTIVE.findall(markdown):
        options = (yaml.safe_load(textwrap.dedent(block)) or {}).get("options", {}) if block.strip() else {}
        found.append((path, options))
    return found


def _shown(obj, options: dict) -> list:
    """The members of `obj` the page shows: its `members:` list, or its public methods, properties
    and classes (attributes are documented in their class's docstring)."""
    listed = options.get("members")
    if isinstance(listed, list):
        return [obj.members[name] for name in listed if name in obj.members]
    return [
        m
        for name, m in obj.members.items()
        if not name.startswith("_")
        and not m.is_alias
        and (m.is_function or m.is_class or (m.is_attribute and "property" in m.labels))
    ]


def undocumented(markdown: str) -> list[str]:
    """Every object, or member shown, of the page's directives that has no docstring."""
    import griffe

    package = griffe.load("midibert", search_paths=[str(ROOT)])
    missing = []
    for path, options in directives(markdown):
        obj = package[path.removeprefix("midibert.")]
        obj = obj.final_target if obj.is_alias else obj
        if not obj.docstring:
            missing.append(path)
        if obj.is_class:
            listed = options.get("members")
            if isinstance(listed, list):
                missing += [f"{path}.{name} (listed, does not exist)" for name in listed if name not in obj.members]
            missing += [f"{path}.{m.name}" for m in _shown(obj, options) if not m.docstring]
    return missing


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri == API_PAGE:
        for name in undocumented(markdown):
            log.warning(f"{API_PAGE}: {name} has no docstring; the API reference would leave it out")
    return markdown
