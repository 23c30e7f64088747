"""The package as a user gets it: public names, what an import pulls in, the configs it carries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import midibert
from tests.conftest import ROOT

TRAINING_STACK = (
    "pytorch_lightning",
    "lightning",
    "lightning_fabric",
    "torchmetrics",
    "sklearn",
    "matplotlib",
    "hydra",
    "omegaconf",
    "wandb",
)


def loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter has imported after running `code`."""
    probe = f"import sys\n{code}\nimport json; print(json.dumps([m for m in {modules!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize("module", ["midibert.classify", "midibert.tokenize", "midibert.bundle"])
def test_inference_imports_no_training_stack(module):
    assert loaded_after(f"import {module}", TRAINING_STACK) == []


def test_package_import_is_cheap_and_the_cli_parser_loads_no_torch():
    assert loaded_after("import midibert", ("numpy", "symusic", "torch", *TRAINING_STACK)) == []
    assert loaded_after("from midibert.cli import build_parser; build_parser()", ("torch", *TRAINING_STACK)) == []


def test_training_package_loads_lightning_only_for_what_needs_it():
    light = "import midibert.training.masking, midibert.training.sampler, midibert.training.optim"
    assert loaded_after(light, TRAINING_STACK) == []
    code = "from midibert.training import CONF_DIR, build_trainer, check_entry, reports_errors, run_hydra"
    assert loaded_after(code, ("pytorch_lightning", "hydra")) == ["pytorch_lightning", "hydra"]


def test_public_names():
    from midibert.classify import Classifier
    from midibert.embedding import embed
    from midibert.errors import MidiError
    from midibert.tokenize import Tokenizer

    assert midibert.__all__ == ["Classifier", "MidiError", "Tokenizer", "__version__", "embed"]
    assert (midibert.Classifier, midibert.MidiError, midibert.Tokenizer) == (Classifier, MidiError, Tokenizer)
    assert midibert.embed is embed and callable(midibert.embed)
    assert set(midibert.__all__) <= set(dir(midibert))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        midibert.Nope  # noqa: B018


def test_configs_ship_inside_the_package():
    from midibert.training import CONF_DIR

    conf = Path(CONF_DIR)
    assert conf == Path(midibert.__file__).parent / "conf"
    assert {"pretrain.yaml", "finetune.yaml", "run.yaml"} <= {p.name for p in conf.glob("*.yaml")}
    assert (ROOT / "conf").resolve() == conf.resolve()  # the checkout's conf/ is the same folder, not a copy


def test_training_without_the_train_extra_says_what_to_install(monkeypatch, capsys):
    """The lean install has no Lightning, Hydra, ...: a training entry point refuses in one line
    (CI checks the same in a virtual environment without them)."""
    import importlib.util

    from midibert import errors

    real = importlib.util.find_spec
    monkeypatch.setattr(errors, "find_spec", lambda name: None if name in ("hydra", "wandb") else real(name))
    with pytest.raises(errors.MissingExtra, match=r'pip install "midibert\[train\]" \(missing: hydra-core\)$'):
        errors.require_extra("train")
    with pytest.raises(SystemExit) as stop:
        errors.require_extra("train", main=True)
    assert stop.value.code == 2 and capsys.readouterr().err.count("\n") == 1


def test_only_the_wandb_logger_needs_wandb(monkeypatch, tmp_path):
    """Training that logs elsewhere runs without wandb (a GPU image may lack it); logger=wandb
    asks for it in one line."""
    import importlib.util

    from midibert import errors
    from midibert.training.trainer import wandb_logger

    real = importlib.util.find_spec
    monkeypatch.setattr(errors, "find_spec", lambda name: None if name == "wandb" else real(name))
    errors.require_extra("train")
    with pytest.raises(errors.MissingExtra, match=r"\(missing: wandb\)$"):
        wandb_logger("p", str(tmp_path))


def test_setup_cfg_extras_match_what_the_code_requires():
    """errors.EXTRAS (what a command checks for) names the packages setup.cfg's train extra installs."""
    from configparser import ConfigParser

    from midibert.errors import EXTRAS

    cfg = ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    train = {
        line.split(">")[0].split("=")[0].strip()
        for line in cfg["options.extras_require"]["train"].split("\n")
        if line.strip()
    }
    assert train == set(EXTRAS["train"].values())
    core = cfg["options"]["install_requires"]
    assert not any(package in core for package in EXTRAS["train"].values())
