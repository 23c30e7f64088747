"""Rewrite the generated tables of README.md and docs/*.md from the commands that make them.

    python docs/tables.py            # rewrite every marked block
    python docs/tables.py --check    # exit 1, naming the files, where a block differs

A block is what lies between `<!-- midibert models -->` and `<!-- /midibert models -->`: the
output of `midibert models` (the packaged models, read from midibert/models/index.json), so model
figures are never typed by hand. tests/test_docs.py fails when a block differs from the output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {"midibert models": [sys.executable, "-m", "midibert", "models"]}


def output(command: str) -> str:
    """What `command` prints now, for the package's own models ($MIDIBERT_MODELS ignored)."""
    env = {k: v for k, v in os.environ.items() if k != "MIDIBERT_MODELS"}
    done = subprocess.run(COMMANDS[command], capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    return done.stdout.strip()


def block(command: str) -> re.Pattern:
    """The marked block of `command`: the markers and what lies between them."""
    return re.compile(rf"(<!-- {re.escape(command)} -->\n)(.*?)(<!-- /{re.escape(command)} -->)", flags=re.S)


def render(text: str, outputs: dict[str, str]) -> str:
    """`text` with every marked block replaced by its command's output."""
    for command, out in outputs.items():
        text = block(command).sub(lambda m, out=out: m.group(1) + out + "\n" + m.group(3), text)
    return text


def pages() -> list[Path]:
    """README.md and the docs pages that hold a marked block."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [f for f in files if any(block(c).search(f.read_text()) for c in COMMANDS)]


def main(check: bool = False) -> int:
    outputs = {c: output(c) for c in COMMANDS}
    stale = []
    for page in pages():
        text = page.read_text()
        new = render(text, outputs)
        if new != text:
            stale.append(page.relative_to(ROOT))
            if not check:
                page.write_text(new)
    verb = "differ from the commands' output" if check else "rewritten"
    print(f"{', '.join(map(str, stale))}: {verb}" if stale else "generated tables up to date")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(check="--check" in sys.argv[1:]))
