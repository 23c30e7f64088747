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
    from midibert.errors import MidiError
    from midibert.tokenize import Tokenizer

    assert midibert.__all__ == ["Classifier", "MidiError", "Tokenizer", "__version__"]
    assert (midibert.Classifier, midibert.MidiError, midibert.Tokenizer) == (Classifier, MidiError, Tokenizer)
    assert set(midibert.__all__) <= set(dir(midibert))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        midibert.Nope  # noqa: B018


def test_configs_ship_inside_the_package():
    from midibert.training import CONF_DIR

    conf = Path(CONF_DIR)
    assert conf == Path(midibert.__file__).parent / "conf"
    assert {"pretrain.yaml", "finetune.yaml", "run.yaml"} <= {p.name for p in conf.glob("*.yaml")}
    assert (ROOT / "conf").resolve() == conf.resolve()  # the checkout's conf/ is the same folder, not a copy
