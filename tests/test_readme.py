"""README.md and the documentation pages (docs/*.md) stay true: their Python blocks run, and every
command they show parses and composes.

Python blocks run with their placeholders pointed at real files: "song.mid" at a shipped test song
and "runs/.../<task>-bert/bundle" at tiny bundles of that task; a block whose first line is
`# needs ...` (real data, minutes of work) is only compiled. Shell lines are checked without
running them: `midibert ...` through the CLI's own parser, `python -m midibert.<stage> ...` by
composing its Hydra config with the same overrides, `python benchmarks/...` by the script's
existence. A `--config-dir` folder holds the config files its page shows (a yaml block after the
path it names).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from midibert.cli import build_parser
from midibert.training import CONF_DIR
from tests.conftest import ROOT, SHIPPED_SONGS
from tests.factories import MELODY, STYLE, VELOCITY, make_bundle
from tests.hydra_configs import config

PAGES = {str(p.relative_to(ROOT)): p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
README = PAGES["README.md"]
TASKS = {
    "melody": ("token", MELODY),
    "velocity": ("token", VELOCITY),
    "style": ("sequence", STYLE),
    "emotion": ("sequence", {i: f"Q{i + 1}" for i in range(4)}),
}


def blocks(text: str, lang: str) -> list[str]:
    return [code for lang_, code in re.findall(r"```(\w+)\n(.*?)```", text, flags=re.S) if lang_ == lang]


def config_files(text: str) -> dict[str, str]:
    """The config files a page shows: a yaml block right after the path it names."""
    return dict(re.findall(r"`([\w/.-]+\.yaml)`:\n\n```yaml\n(.*?)```", text, flags=re.S))


def shell_lines(text: str) -> list[str]:
    """Each command of a page's bash blocks: continuations joined, comments and loop syntax dropped,
    a `for t in a b; do` loop expanded over its values."""
    lines = []
    for block in blocks(text, "bash"):
        block = block.replace("\\\n", " ")
        loop = re.search(r"for (\w+) in ([^;]+); do\n(.*?)\ndone", block, flags=re.S)
        if loop:
            var, values, body = loop.groups()
            body = "\n".join(body.replace(f"${var}", v) for v in values.split())
            block = block[: loop.start()] + body + block[loop.end() :]
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            for part in line.split("&&"):
                if part.strip():
                    lines.append(part.strip())
    return lines


COMMANDS = {page: shell_lines(text) for page, text in PAGES.items()}
PYTHON = [(page, i, code) for page, text in PAGES.items() for i, code in enumerate(blocks(text, "python"))]


def test_readme_has_examples():
    assert blocks(README, "python") and any(c.startswith("midibert ") for c in COMMANDS["README.md"])
    assert any(c.startswith("python -m midibert.run") for c in COMMANDS["README.md"])


@pytest.mark.parametrize(("page", "i", "code"), PYTHON, ids=[f"{p}-{i}" for p, i, _ in PYTHON])
def test_python_block_runs(page, i, code, tmp_path, monkeypatch):
    if code.startswith("# needs "):  # real data and minutes of work: it must parse, it is not run
        compile(code, f"{page} python block {i}", "exec")
        return
    code = code.replace('"song.mid"', repr(str(SHIPPED_SONGS[0])))
    for path, task in set(re.findall(r'"(runs/[^"]*/(\w+)-bert/bundle)"', code)):
        level, labels = TASKS[task]
        made = make_bundle(tmp_path / "bundles" / task, task, level, labels)
        code = code.replace(f'"{path}"', repr(str(made)))
    monkeypatch.delenv("MIDIBERT_MODELS", raising=False)  # `mc.melody("song.mid")`: the models in the package
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{page} python block {i}", "exec"), {})


CLI_LINES = [(page, c) for page, lines in COMMANDS.items() for c in lines if c.startswith("midibert ")]


@pytest.mark.parametrize(("page", "line"), CLI_LINES, ids=[f"{p}: {c}" for p, c in CLI_LINES])
def test_cli_line_parses(page, line):
    build_parser().parse_args(shlex.split(line)[1:])


HYDRA_LINES = [(page, c) for page, lines in COMMANDS.items() for c in lines if c.startswith("python -m midibert.")]


@pytest.mark.parametrize(("page", "line"), HYDRA_LINES, ids=[f"{p}: {c}" for p, c in HYDRA_LINES])
def test_hydra_line_composes(page, line, tmp_path):
    words = shlex.split(line)
    if "--config-dir" in words:  # a user's config folder: the page's own config files, written here
        for rel, text in config_files(PAGES[page]).items():
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(text)
        i = words.index("--config-dir")
        words[i : i + 2] = [f"hydra.searchpath=[file://{tmp_path / words[i + 1]}]"]
    stage = words[2].split(".")[1]
    overrides = [w for w in words[3:] if w != "-m"]
    if "-m" in words[3:]:  # a sweep (the -m after the module): each value of a comma list must compose
        overrides = [o.split(",")[0] if "=" in o else o for o in overrides]
        overrides = [o for o in overrides if not o.startswith("hydra/launcher")]  # needs the optional plugin
    config(stage, overrides, tmp_path)


BENCHMARKS = sorted({s for text in PAGES.values() for s in re.findall(r"python (benchmarks/\S+\.py)", text)})


@pytest.mark.parametrize("script", BENCHMARKS)
def test_benchmark_exists(script):
    assert (ROOT / script).is_file()


def test_config_groups_named_exist():
    """The config groups and options the pages list are in conf/."""
    pages = [text for text in PAGES.values() if "Config groups" in text]
    assert pages, "no page lists the config groups"
    for text in pages:
        section = text.split("Config groups", 1)[1].split("\n\n", 1)[0]
        for group, options in re.findall(r"`(\w+)/` \(([^)]*)\)", section):
            for option in re.findall(r"[\w-]+", options):
                assert (Path(CONF_DIR) / group / f"{option}.yaml").is_file(), f"{group}/{option}"


def test_shown_experiment_file_extends_a_packaged_one(tmp_path):
    """The pages' own experiment file, on the search path: its values win, the rest comes from `smoke`."""
    ((rel, text),) = {k: v for t in PAGES.values() for k, v in config_files(t).items()}.items()
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / rel).write_text(text)
    folder = tmp_path / Path(rel).parts[0]
    cfg = config("pretrain", [f"hydra.searchpath=[file://{folder}]", f"experiment={Path(rel).stem}"], tmp_path)
    assert (cfg.name, cfg.trainer.max_steps, cfg.encoder.preset) == ("mine", 20, "bert-tiny")
