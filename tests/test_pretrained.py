"""Model names: packaged names and task defaults, bundle directories, Hugging Face Hub repo ids
read from a local cache laid out as the hub's (never the network); one clear error each."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from midibert.classify import Classifier
from midibert.pretrained import default_model, packaged, resolve
from tests.conftest import ROOT, SHIPPED_SONGS
from tests.factories import MELODY, STYLE, make_bundle

REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundles")
    return {
        "melody": make_bundle(root / "melody", "melody", "token", MELODY),
        "style": make_bundle(root / "style", "style", "sequence", STYLE),
    }


@pytest.fixture(scope="module")
def songs() -> list:
    return SHIPPED_SONGS[:1]


@pytest.fixture
def models(tmp_path, bundles, monkeypatch):
    """A models folder as `midibert release export` lays it out, named by $MIDIBERT_MODELS."""
    folder = tmp_path / "models"
    entries = {}
    for task, bundle in bundles.items():
        name = f"tiny-{task}"
        shutil.copytree(bundle, folder / name)
        entries[name] = {"task": task, "default": True, "path": name}
    (folder / "index.json").write_text(json.dumps({"format_version": 1, "models": entries}))
    monkeypatch.setenv("MIDIBERT_MODELS", str(folder))
    return folder


@pytest.fixture
def hub_cache(tmp_path, bundles, monkeypatch):
    """$HF_HUB_CACHE holding one snapshot of `someone/tiny-melody`, offline."""
    import huggingface_hub.constants as hub

    cache = tmp_path / "hub"
    repo = cache / "models--someone--tiny-melody"
    shutil.copytree(bundles["melody"], repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))  # for the CLI's own process
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(cache))  # huggingface_hub read them when first imported
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    return cache


def test_packaged_names_and_task_defaults(models, bundles):
    assert set(packaged()) == {"tiny-melody", "tiny-style"}
    assert resolve("tiny-melody") == resolve("melody") == models / "tiny-melody"
    assert default_model("style") == "tiny-style"
    clf = Classifier.from_pretrained("melody", task="melody")
    assert clf.task["name"] == "melody" and clf.model_classes == list(MELODY.values())
    assert clf.class_names == ["melody", "accompaniment"]  # the tune (melody or bridge) against the rest
    three = Classifier.from_pretrained("melody", task="melody3")  # the same model in its own classes
    assert three.task_name == "melody3" and three.class_names == list(MELODY.values())
    assert resolve("melody3") == models / "tiny-melody"
    assert resolve(bundles["style"]) == bundles["style"]  # a directory is taken as given


def test_packaged_model_asked_for_another_task(models):
    with pytest.raises(ValueError, match="tiny-style is a packaged style model, not a melody one"):
        Classifier.from_pretrained("tiny-style", task="melody")
    with pytest.raises(ValueError, match="no packaged velocity model in this installation"):
        default_model("velocity")


def test_unknown_names(models, tmp_path):
    with pytest.raises(ValueError, match="no such bundle directory, packaged model .*tiny-melody.*or Hugging Face"):
        resolve("no-such-model")
    shutil.rmtree(models / "tiny-style")
    with pytest.raises(ValueError, match="tiny-style.*missing; reinstall"):
        resolve("tiny-style")


def test_hub_repo_from_the_local_cache_offline(hub_cache, songs):
    path = resolve("someone/tiny-melody")
    assert path == hub_cache / "models--someone--tiny-melody" / "snapshots" / REVISION
    res = Classifier.from_pretrained("someone/tiny-melody", task="melody").predict(songs[0])
    assert res.level == "note" and set(res.labels) <= set(MELODY.values())
    with pytest.raises(ValueError, match=r"someone/absent: .*not in the Hugging Face cache .*HF_HUB_OFFLINE is set"):
        resolve("someone/absent")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "midibert", *args], capture_output=True, text=True, cwd=ROOT)


def test_cli_names_and_errors(models, hub_cache, songs, tmp_path):
    ok = run("classify", str(songs[0]), "--task", "melody", "--out", str(tmp_path / "out"))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(str(songs[0])) and (tmp_path / "out" / songs[0].name).is_file()
    hub = run("classify", str(songs[0]), "--model", "someone/tiny-melody", "--json")
    assert hub.returncode == 0 and json.loads(hub.stdout)["task"] == "melody", hub.stderr
    for args, says in [
        (("--model", "no-such-model"), "no such bundle directory"),
        (("--task", "melody", "--model", "tiny-style"), "packaged style model, not a melody one"),
        (("--task", "velocity"), "no packaged velocity model"),
        (("--model", "someone/absent"), "not in the Hugging Face cache"),
        ((), "say which model"),
    ]:
        out = run("classify", str(songs[0]), *args, "--out", str(tmp_path / "bad"))
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and says in out.stderr, (args, out.stderr)
        assert not (tmp_path / "bad").exists()


def test_listing_needs_no_torch():
    """`midibert models` and name resolution are instant: they import neither torch nor Lightning."""
    code = (
        "import sys, midibert.pretrained, midibert.cli; midibert.cli.main(['models']); "
        "assert not {'torch', 'pytorch_lightning', 'huggingface_hub'} & set(sys.modules), sys.modules.keys()"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr


def test_melody_answers_the_tune(models):
    """`--task melody` adds the model's melody and bridge into one class, the tune; its truth counts
    POP909's bridge notes as the tune, and `melody3` keeps the model's three classes."""
    import numpy as np

    from midibert.evaluate import prediction_truth
    from midibert.tokenize.labels import melody_classes

    song = SHIPPED_SONGS[0]
    tune = Classifier.from_pretrained("melody", task="melody", quantize=False).predict(song)
    three = Classifier.from_pretrained("melody", task="melody3", quantize=False).predict(song)
    assert (tune.task, three.task) == ("melody", "melody3")
    np.testing.assert_allclose(tune.probs[:, 0], three.probs[:, 0] + three.probs[:, 1], rtol=1e-5)
    np.testing.assert_allclose(tune.probs[:, 1], three.probs[:, 2], rtol=1e-5)
    truth3 = melody_classes(tune.track, 3)
    assert set(tune.track) >= {"MELODY", "BRIDGE"}
    np.testing.assert_array_equal(prediction_truth(tune, None), np.where(truth3 == 2, 1, 0))
    np.testing.assert_array_equal(prediction_truth(three, None), truth3)
