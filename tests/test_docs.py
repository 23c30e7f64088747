"""The documentation stays true: the generated tables are what their commands print now, every
relative link of README.md, CONTRIBUTING.md and docs/*.md points at a file that exists, every page
is in the site's navigation, and the API reference shows no object without a docstring.

The code blocks of the same pages are tested by tests/test_readme.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, script

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted(DOCS.glob("*.md"))]


def docs_script(name: str):
    return script(DOCS / f"{name}.py", f"docs_{name}")


tables = docs_script("tables")


def test_models_tables_are_the_output_of_midibert_models():
    live = tables.output("midibert models")
    assert live.startswith("| name |"), live[:200]
    pages = tables.pages()
    assert DOCS / "models.md" in pages, "docs/models.md lost its <!-- midibert models --> block"
    fresh = {p: tables.render(p.read_text(), {"midibert models": live}) for p in pages}
    stale = [str(p.relative_to(ROOT)) for p, text in fresh.items() if text != p.read_text()]
    assert not stale, f"{stale}: the packaged models changed; run `python docs/tables.py`"


def test_tables_render_replaces_only_the_marked_block():
    text = "before\n<!-- midibert models -->\nold\n<!-- /midibert models -->\nafter\n"
    assert tables.render(text, {"midibert models": "| new |"}) == (
        "before\n<!-- midibert models -->\n| new |\n<!-- /midibert models -->\nafter\n"
    )


def relative_links(text: str) -> list[str]:
    """Link and image targets outside code, other than URLs and same-page anchors."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text)
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_point_at_files(page):
    missing = [t for t in relative_links(page.read_text()) if not (page.parent / t.split("#")[0]).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_every_page_is_in_the_navigation():
    def listed(nav) -> list[str]:
        if isinstance(nav, str):
            return [nav]
        if isinstance(nav, dict):
            return [p for v in nav.values() for p in listed(v)]
        return [p for item in nav for p in listed(item)]

    nav = listed(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    assert sorted(nav) == sorted(p.name for p in DOCS.glob("*.md"))


def test_api_reference_shows_no_undocumented_object():
    pytest.importorskip("griffe")
    hooks = docs_script("hooks")
    assert hooks.undocumented((DOCS / "api.md").read_text()) == []


def test_api_reference_names_the_public_api():
    """The objects the reference must show are there."""
    shown = {path for path, _ in docs_script("hooks").directives((DOCS / "api.md").read_text())}
    wanted = {
        "midibert.classify.Classifier",
        "midibert.classify.Prediction",
        "midibert.tokenize.Tokenizer",
        "midibert.embedding.embed",
        "midibert.embedding.Embedder",
        "midibert.tasks.Task",
        "midibert.tasks.get_task",
        "midibert.datasets.base.read",
        "midibert.datasets.base.Piece",
        "midibert.datasets.base.DatasetInfo",
        "midibert.datasets.prepare.prepare",
        "midibert.pretrain.pretrain",
        "midibert.finetune.finetune",
        "midibert.run.run_pipeline",
    }
    assert wanted <= shown, sorted(wanted - shown)


def test_png_files_are_used():
    used = {Path(t).name for p in PAGES for t in relative_links(p.read_text()) if t.endswith(".png")}
    assert {p.name for p in DOCS.glob("*.png")} <= used
