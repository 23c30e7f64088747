"""README.md stays true: its Python blocks run, and every command it shows parses and composes.

Python blocks run with their placeholders pointed at real files: "song.mid" at a shipped test song and
"runs/.../<task>-bert/bundle" at tiny bundles of that task. Shell lines are checked without
running them: `midibert ...` through the CLI's own parser, `python -m midibert.<stage> ...`
by composing its Hydra config with the same overrides, `python benchmarks/...` by the script's existence. A `--config-dir` folder holds the config files
README shows (a yaml block after the path it names).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from midibert.cli import build_parser
from midibert.training import CONF_DIR
from tests.conftest import ROOT, SHIPPED_SONGS
from tests.hydra_configs import config
from tests.test_classify import MELODY, STYLE, VELOCITY, make_bundle

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
SHELL = [code for lang, code in BLOCKS if lang == "bash"]
CONFIG_FILES = dict(
    re.findall(r"`([\w/.-]+\.yaml)`:\n\n```yaml\n(.*?)```", README, flags=re.S)
)  # path named before a block
TASKS = {
    "melody": ("token", MELODY),
    "velocity": ("token", VELOCITY),
    "style": ("sequence", STYLE),
    "emotion": ("sequence", {i: f"Q{i + 1}" for i in range(4)}),
}


def shell_lines() -> list[str]:
    """Each command of the bash blocks: continuations joined, comments and loop syntax dropped,
    a `for t in a b; do` loop expanded over its values."""
    lines = []
    for block in SHELL:
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


COMMANDS = shell_lines()


def test_readme_has_examples():
    assert PYTHON and any(c.startswith("midibert ") for c in COMMANDS)
    assert any(c.startswith("python -m midibert.run") for c in COMMANDS)


@pytest.mark.parametrize("i", range(len(PYTHON)))
def test_python_block_runs(i, tmp_path, monkeypatch):
    code = PYTHON[i].replace('"song.mid"', repr(str(SHIPPED_SONGS[0])))
    for path, task in set(re.findall(r'"(runs/[^"]*/(\w+)-bert/bundle)"', code)):
        level, labels = TASKS[task]
        made = make_bundle(tmp_path / "bundles" / task, task, level, labels)
        code = code.replace(f'"{path}"', repr(str(made)))
    monkeypatch.delenv("MIDIBERT_MODELS", raising=False)  # `mc.melody("song.mid")`: the models in the package
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README python block {i}", "exec"), {})


@pytest.mark.parametrize("line", [c for c in COMMANDS if c.startswith("midibert ")])
def test_cli_line_parses(line):
    build_parser().parse_args(shlex.split(line)[1:])


@pytest.mark.parametrize("line", [c for c in COMMANDS if c.startswith("python -m midibert.")])
def test_hydra_line_composes(line, tmp_path):
    words = shlex.split(line)
    if "--config-dir" in words:  # a user's config folder: README's own config files, written here
        for rel, text in CONFIG_FILES.items():
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


@pytest.mark.parametrize("script", sorted(set(re.findall(r"python (benchmarks/\S+\.py)", README))))
def test_benchmark_exists(script):
    assert (ROOT / script).is_file()


def test_config_groups_named_exist():
    """The config groups and options the README lists are in conf/."""
    section = README.split("Config groups", 1)[1].split("\n\n", 1)[0]
    for group, options in re.findall(r"`(\w+)/` \(([^)]*)\)", section):
        for option in re.findall(r"[\w-]+", options):
            assert (Path(CONF_DIR) / group / f"{option}.yaml").is_file(), f"{group}/{option}"


def test_readme_experiment_file_extends_a_packaged_one(tmp_path):
    """README's own experiment file, on the search path: its values win, the rest comes from `smoke`."""
    ((rel, text),) = CONFIG_FILES.items()
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / rel).write_text(text)
    folder = tmp_path / Path(rel).parts[0]
    cfg = config("pretrain", [f"hydra.searchpath=[file://{folder}]", f"experiment={Path(rel).stem}"], tmp_path)
    assert (cfg.name, cfg.trainer.max_steps, cfg.encoder.preset) == ("mine", 20, "bert-tiny")
