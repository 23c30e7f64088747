"""Fine-tuning: every task writes complete results, baselines run, the velocity target never leaks."""

from __future__ import annotations

import json

import pytest
import torch

from midibert.bundle import load_bundle
from midibert.finetune import finetune
from midibert.pretrain import pretrain
from midibert.tokenize import IGNORE, MASK, Tokenizer
from midibert.training.finetuner import FineTuner
from tests.conftest import shared
from tests.hydra_configs import config

SAMPLE_STYLE = ["task.data.label_key=style", "task.class_names=[waltz,march,nocturne,ragtime]"]
SMALL_RNN = ["model.head.hidden=16", "model.head.layers=1"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("finetune")


@pytest.fixture(scope="module")
def encoder(workdir):
    """A smoke-pre-trained bert-tiny bundle, shared by the tests of this module."""
    return pretrain(config("pretrain", ["experiment=smoke"], workdir))


def run(workdir, task: str, model: str, *extra: str) -> dict:
    cfg = config("finetune", ["experiment=finetune_smoke", f"task={task}", f"model={model}", *extra], workdir)
    out = finetune(cfg)
    return json.loads((out / "results.json").read_text()) | {"dir": out}


@pytest.mark.parametrize(
    "task,extra,level",
    [
        ("melody", [], "note"),
        ("velocity", [], "note"),
        ("style", [*SAMPLE_STYLE, "task.transpose=2"], "piece"),
        ("emotion", [], "piece"),
    ],
)
def test_each_task_fine_tunes_and_writes_complete_results(workdir, encoder, task, extra, level):
    res = run(workdir, task, "bert", f"pretrained={encoder}", *extra)
    assert res["task"] == task and res["model"] == "bert" and set(res["levels"]) == {"window", level}
    for metrics in res["levels"].values():
        assert 0 <= metrics["accuracy"] <= 1 and metrics["n"] > 0
        assert len(metrics["confusion"]) == len(res["class_names"])
    for name in ("results.md", f"confusion_{level}.png", f"confusion_{level}.json"):
        assert (res["dir"] / name).is_file()
    bundle = load_bundle(res["dir"] / "bundle")
    assert bundle.task["name"] == task and len(bundle.id2label) == len(res["class_names"])
    assert bundle.task["key_to_c"] == (task == "emotion")  # so classify reads emotion's input in C too


@pytest.mark.parametrize("task,extra", [("melody", SMALL_RNN), ("emotion", SMALL_RNN)])
def test_rnn_baseline(workdir, task, extra):
    res = run(workdir, task, "rnn", *extra)
    assert res["model"] == "rnn" and res["scale"]["steps"] > 0


def test_rule_baselines(workdir):
    sky = run(workdir, "melody", "skyline")
    assert sky["levels"]["note"]["n"] > 0 and sky["levels"]["note"]["per_class"]["bridge"]["recall"] == 0
    maj = run(workdir, "velocity", "majority")
    per_class = maj["levels"]["note"]["per_class"]
    assert sum(1 for c in per_class.values() if c["recall"] > 0) == 1  # one class for every note
    # note statistics separate the sample corpus's styles (tempo, density, register), as a network must
    feats, maj = (run(workdir, "style", arch, *SAMPLE_STYLE) for arch in ("features", "majority"))
    assert feats["levels"]["piece"]["accuracy"] > maj["levels"]["piece"]["accuracy"] + 0.2
    with pytest.raises(ValueError, match="set task.key_to_c=false to transpose"):
        run(workdir, "emotion", "rnn", "task.transpose=2")
    with pytest.raises(ValueError, match="piece-level tasks"):
        run(workdir, "melody", "features")


def test_velocity_never_sees_velocity():
    """With performance tokens the Velocity family reaches the network only as MASK."""
    tok = Tokenizer.create("cp", kind="performance")
    v = tok.families.index("Velocity")
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, ids, mask):
            seen.append(ids.clone())
            return torch.zeros(*ids.shape[:2], 6, requires_grad=True)

    module = FineTuner(Spy(), "token", 6, {"lr": 1e-3, "weight_decay": 0.0}, hide_families=[v])
    ids = torch.randint(3, 20, (2, 10, len(tok.families)))
    mask = torch.ones(2, 10, dtype=torch.bool)
    module({"input_ids": ids, "attention_mask": mask})
    assert (seen[0][..., v] == MASK).all()
    others = [f for f in range(len(tok.families)) if f != v]
    assert torch.equal(seen[0][..., others], ids[..., others])
    assert "Velocity" not in Tokenizer.create("cp", kind="score").families  # the default velocity input


def test_real_subsets(workdir):
    shared("pop909")
    shared("pianist8")
    real = [f"paths.data_root={shared()}", "task.data.seq_len=128"]
    melody = run(
        workdir,
        "melody",
        "rnn",
        *SMALL_RNN,
        *real,
        "task.data.dataset=pop909",
        "task.data.path=${paths.data_root}/pop909",
        "task.data.max_pieces=3",
        "name=melody-real",
    )
    assert melody["dataset"] == "pop909" and melody["levels"]["note"]["n"] > 1000
    style = run(
        workdir,
        "style",
        "bert",
        *real,
        "task.data.dataset=pianist8",
        "task.data.path=${paths.data_root}/pianist8",
        "task.data.max_pieces=8",
        "name=style-real",
    )
    assert style["levels"]["piece"]["n"] == 8


def test_predictions_of_different_widths_are_joined():
    """EMOPIA's clips are shorter than a window, so test batches are cut to different widths."""
    from midibert.finetune import concat_batches

    def batch(B, L, C=4, token=True):
        out = {
            "probs": torch.rand(B, L, C) if token else torch.rand(B, C),
            "note_index": torch.arange(L).expand(B, L),
            "piece": torch.arange(B),
        }
        out["labels"] = torch.zeros(B, L, dtype=torch.long) if token else torch.zeros(B, dtype=torch.long)
        return out

    for token in (True, False):
        cat = concat_batches([batch(2, 256, token=token), batch(3, 174, token=token)])
        assert cat["note_index"].shape == (5, 256) and (cat["note_index"][2:, 174:] == -1).all()
        assert cat["piece"].shape == (5,)
        assert cat["probs"].shape == ((5, 256, 4) if token else (5, 4))
        assert cat["labels"].shape == ((5, 256) if token else (5,))
        if token:
            assert (cat["labels"][2:, 174:] == IGNORE).all()


def _entry(name: str, args: list[str], tmp_path, monkeypatch, full_error: str = "0"):
    """Run `python -m midibert.<name> ARGS` in this process (Hydra reads sys.argv); returns the
    exit status."""
    import importlib
    import sys

    from midibert.training import run_hydra

    monkeypatch.setattr(
        sys, "argv", [name, *args, f"paths.output_dir={tmp_path / 'runs'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    )
    monkeypatch.setenv("HYDRA_FULL_ERROR", full_error)  # run_hydra changes both; restored after the test
    monkeypatch.setenv("MIDIBERT_USER_HYDRA_FULL_ERROR", full_error)
    with pytest.raises(SystemExit) as e:
        run_hydra(importlib.import_module(f"midibert.{name}").main)
    return e.value.code


@pytest.mark.parametrize(
    "name,args,message",
    [
        ("finetune", ["pretrained=/nonexistent"], "/nonexistent: no such bundle directory, packaged model"),
        ("finetune", ["model=rnn", "task.data.path=/nonexistent"], "pop909: no dataset at /nonexistent"),
        (
            "pretrain",
            ["no_such_key=3"],
            "Could not override 'no_such_key'. To append to your config use +no_such_key=3 "
            "(Key 'no_such_key' is not in struct)",
        ),
        ("pretrain", ["encoder=nope"], "In 'pretrain': Could not find 'encoder/nope'"),
        # a group or experiment of another entry point: one line saying whose it is
        ("pretrain", ["model=rnn"], "pretrain: `model` is fine-tuning's choice of bert / rnn / skyline / majority"),
        ("pretrain", ["experiment=demo"], "pretrain: `pipeline` is the main job's"),
        ("finetune", ["data=pretrain_score"], "finetune: `data` is pre-training's corpus"),
        ("finetune", ["experiment=cpu_reference"], "finetune: `pipeline` is the main job's"),
        ("finetune", ["model=bert-small"], "In 'finetune': Could not find 'model/bert-small'"),
    ],
)
def test_entry_point_user_errors_are_one_line_exit_2(name, args, message, tmp_path, monkeypatch, capsys):
    assert _entry(name, args, tmp_path, monkeypatch) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"midibert: error: {message}"), err
    assert "Traceback" not in err and "Error executing job" not in err


def test_entry_point_bugs_are_one_line_and_a_traceback_on_request(tmp_path, monkeypatch, capsys):
    def bug(cfg):
        raise KeyError("a bug")

    monkeypatch.setattr("midibert.finetune.finetune", bug)
    assert _entry("finetune", [], tmp_path, monkeypatch) == 1
    assert (
        capsys.readouterr().err.splitlines()[-1]
        == "midibert: internal error: KeyError: 'a bug' (set HYDRA_FULL_ERROR=1 for the traceback)"
    )
    with pytest.raises(KeyError):  # HYDRA_FULL_ERROR=1: the exception itself, with its traceback
        _entry("finetune", [], tmp_path, monkeypatch, full_error="1")


def test_trainers_flush_denormals_while_fitting_only(tmp_path):
    """Denormal floats made the BiLSTM's CPU steps 7x slower late in training; a trainer zeroes
    them while it fits and gives the process its IEEE floats back afterwards."""
    from midibert.training import FlushDenormals, build_trainer

    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals")
    denormal = torch.tensor(1e-40)
    trainer = build_trainer(config("finetune", ["experiment=finetune_smoke", "logger=none"], tmp_path))
    flush = [c for c in trainer.callbacks if isinstance(c, FlushDenormals)]
    assert len(flush) == 1 and denormal * 1.0 != 0
    flush[0].on_fit_start(trainer, None)
    assert denormal * 1.0 == 0
    flush[0].on_fit_end(trainer, None)
    assert denormal * 1.0 != 0


def _own_folder(root, labels: dict[str, int]):
    """`root/<label>/`: copies of the sample corpus's files, `labels[label]` of them each."""
    import shutil

    from midibert.synthetic import generate_corpus

    corpus = generate_corpus(root.parent / f"{root.name}-corpus", n_pieces=8)
    files = sorted((corpus / "midi").rglob("*.mid"))
    for i, (label, n) in enumerate(labels.items()):
        (root / label).mkdir(parents=True)
        for f in files[i * 4 : i * 4 + n]:
            shutil.copy(f, root / label / f.name)
    return root


def test_your_own_piece_labels_from_folders(workdir, encoder):
    """task=folder: classes read from the sub-folders, results and bundle named after them."""
    from midibert.classify import Classifier

    root = _own_folder(workdir / "mine", {"calm": 4, "lively": 4})
    res = run(
        workdir,
        "folder",
        "bert",
        f"pretrained={encoder}",
        "task.data.dataset=folder",
        f"task.data.path={root}",
        "name=mine",
    )
    assert res["task"] == "folder" and res["class_names"] == ["calm", "lively"]
    clf = Classifier.from_pretrained(res["dir"] / "bundle")
    assert clf.class_names == ["calm", "lively"] and clf.level == "piece"
    assert clf.predict(next((root / "calm").glob("*.mid"))).label in ("calm", "lively")


@pytest.mark.parametrize(
    "labels, message",
    [({"only": 6}, "1 'label' class found .* needs at least two"), ({}, "no .mid / .midi files")],
)
def test_your_own_labels_refused(workdir, labels, message, tmp_path):
    root = _own_folder(tmp_path / "mine", labels) if labels else (tmp_path / "empty")
    root.mkdir(exist_ok=True)
    with pytest.raises(ValueError, match=message):
        run(workdir, "folder", "majority", "task.data.dataset=folder", f"task.data.path={root}")


def test_a_named_class_without_pieces_is_refused(workdir, tmp_path):
    root = _own_folder(tmp_path / "mine", {"calm": 4, "lively": 4})
    with pytest.raises(ValueError, match="no piece is labelled 'sad'"):
        run(
            workdir,
            "folder",
            "majority",
            "task.data.dataset=folder",
            f"task.data.path={root}",
            "task.class_names=[calm,lively,sad]",
        )


def test_your_own_note_labels_from_track_names(workdir, encoder, tmp_path):
    """task=folder_notes: each note's class from its track's name through the user's mapping."""
    import numpy as np

    from midibert.classify import Classifier
    from tests.midi_factory import make_score

    root = tmp_path / "songs"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        tune = [(k * 240, 240, int(rng.integers(72, 84)), 90) for k in range(48)]
        chords = [(b * 960, 960, p, 60) for b in range(12) for p in (48, 52, 55)]
        lead = ("Lead Vocal", "MELODY", "vocals")[i % 3]  # any name holding a pattern, in any case
        make_score({lead: tune, "Piano": chords}).dump_midi(str(root / f"song{i}.mid"))
    tracks = "task.tracks={tune:[vocal,melody]}"
    res = run(
        workdir,
        "folder_notes",
        "bert",
        f"pretrained={encoder}",
        "task.data.dataset=folder",
        f"task.data.path={root}",
        tracks,
        "name=notes",
    )
    assert res["task"] == "folder_notes" and res["class_names"] == ["tune", "other"] and "note" in res["levels"]
    clf = Classifier.from_pretrained(res["dir"] / "bundle")
    pred = clf.predict(root / "song0.mid")
    assert clf.class_names == ["tune", "other"] and len(pred.labels) == 48 + 36
    pred.to_midi(tmp_path / "out.mid")
    import symusic

    assert {t.name for t in symusic.Score(str(tmp_path / "out.mid")).tracks} <= {"TUNE", "OTHER"}
    majority = run(workdir, "folder_notes", "majority", "task.data.dataset=folder", f"task.data.path={root}", tracks)
    assert majority["levels"]["note"]["n"] == res["levels"]["note"]["n"]  # the same test notes
    with pytest.raises(ValueError, match="1 'tracks' class found \\(other\\)"):
        run(
            workdir,
            "folder_notes",
            "majority",
            "task.data.dataset=folder",
            f"task.data.path={root}",
            "task.tracks={drums:[kit]}",
        )
    with pytest.raises(ValueError, match="no training note is labelled 'bass'"):
        run(
            workdir,
            "folder_notes",
            "majority",
            "task.data.dataset=folder",
            f"task.data.path={root}",
            "task.tracks={tune:[vocal],bass:[bass]}",
        )


def test_piece_features_join_the_pooled_encoding(workdir, encoder, monkeypatch):
    """task.piece_features: the piece's standardized note statistics go into the head in training
    and in classify, with the train split's mean and scale kept in the bundle."""
    import numpy as np

    from midibert.classify import Classifier
    from tests.conftest import SHIPPED_SONGS

    res = run(workdir, "emotion", "bert", f"pretrained={encoder}", "task.piece_features=true", "name=emotion-features")
    task = load_bundle(res["dir"] / "bundle").task
    n = len(task["features"]["mean"])
    assert task["head"]["n_features"] == n == len(task["features"]["scale"]) and n >= 20
    clf = Classifier.from_pretrained(res["dir"] / "bundle", quantize=False)
    before = clf.predict(SHIPPED_SONGS[0]).probs
    monkeypatch.setattr(clf, "_features", lambda enc: np.full(n, 3.0, dtype=np.float32))
    assert not np.allclose(clf.predict(SHIPPED_SONGS[0]).probs, before)  # the head reads them


def test_note_features_join_each_token(workdir, encoder, monkeypatch):
    """task.note_features: the top-line rule's answer per note goes into the token head in
    training and in classify, computed from the tokens both times."""
    import numpy as np

    from midibert.classify import Classifier
    from tests.conftest import SHIPPED_SONGS

    res = run(workdir, "melody", "bert", f"pretrained={encoder}", "task.note_features=[top_line]", "name=melody-top")
    task = load_bundle(res["dir"] / "bundle").task
    assert task["note_features"] == ["top_line"] and task["head"]["n_features"] == 1
    clf = Classifier.from_pretrained(res["dir"] / "bundle", quantize=False)
    enc = clf.encode(SHIPPED_SONGS[0])
    read = clf._features(enc)
    assert read.shape == (len(enc), 1) and 0 < read.sum() < (enc.note_index >= 0).sum()
    before = clf.predict(SHIPPED_SONGS[0]).probs
    monkeypatch.setattr(clf, "_features", lambda enc: 1 - read)
    assert not np.allclose(clf.predict(SHIPPED_SONGS[0]).probs, before)  # the head reads them
    with pytest.raises(ValueError, match="only the BERT head reads note features"):
        run(workdir, "melody", "rnn", *SMALL_RNN, "task.note_features=[top_line]", "name=melody-top-rnn")


def test_a_task_of_your_own_is_described_by_its_bundle(workdir, encoder, tmp_path):
    """The bundle of a task the registry does not know carries its description: level, classes,
    dataset, label and rule baselines, which classify and the release read."""
    from midibert.classify import Classifier

    root = _own_folder(tmp_path / "mine", {"calm": 4, "lively": 4})
    res = run(
        workdir,
        "folder",
        "bert",
        f"pretrained={encoder}",
        "task.data.dataset=folder",
        f"task.data.path={root}",
        "name=described",
    )
    spec = Classifier.from_pretrained(res["dir"] / "bundle").spec
    assert (spec.name, spec.level, spec.classes) == ("folder", "piece", ("calm", "lively"))
    assert (spec.dataset, spec.label, spec.baselines, spec.writes) == (
        "folder",
        "label",
        ("majority", "features"),
        "marker",
    )
