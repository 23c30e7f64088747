"""Release: a main-job run exported as packaged models with cards (end to end at tiny size on the
generated corpus), licences inherited from every dataset, and the models shipped in the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import symusic
from safetensors import safe_open

import midibert.classify as mc
from midibert import release
from midibert.baselines import skyline_melody
from midibert.classify import Classifier
from midibert.evaluate import score_predictions, split_sources
from midibert.pretrained import ENCODER, packaged
from midibert.tasks import get_task
from midibert.tokenize.labels import melody_classes, velocity_classes
from tests.conftest import ROOT, script, shared
from tests.factories import TINY
from tests.midi_factory import emopia_layout, make_score

TASKS = ("melody", "velocity", "style", "emotion")
PACKAGE_MODELS = ROOT / "midibert" / "models"


def run(*args: str, module: str = "midibert") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> tuple[Path, Path]:
    """(run dir, models folder): the demo pipeline at tiny size, BERT only, then exported."""
    out = tmp_path_factory.mktemp("release")
    made = run(
        "experiment=demo",
        *TINY,
        "pipeline.models=[bert]",
        # melody's windows moved in training as the packaged one's are (experiment=release): its card must say so
        "pipeline.tasks.melody=['task.data.dataset=sample','task.data.path=${paths.cache_dir}/sample',"
        "'task.data.seq_len=128','task.data.batch_size=16','task.transpose=2','task.data.jitter=8']",
        f"paths.output_dir={out / 'runs'}",
        f"paths.cache_dir={out / 'cache'}",
        module="midibert.run",
    )
    assert made.returncode == 0, made.stderr[-3000:]
    run_dir, models = out / "runs" / "run" / "demo", out / "models"
    cross = out / "cross_domain.json"
    cross.write_text(json.dumps(duets_scored(run_dir / "melody-bert" / "bundle")))
    # models this tiny need not beat the rules: exported all the same, their cards say so
    exported = run(
        "release", "export", str(run_dir), str(models), "--allow-below-baselines", "--cross-domain", str(cross)
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    return run_dir, models


def duets_scored(bundle: Path) -> dict:
    """benchmarks/melody_cross_domain.py's result for `bundle` on generated duets (a tune over a
    bass line; no music21), as `midibert release export --cross-domain` reads it."""
    tune = [(t * 480, 480, 72 + (t * 5) % 7, 90) for t in range(16)]
    duet = make_score({"tune": tune, "bass": [(t * 960, 960, 48 + t % 5, 70) for t in range(8)]}, meters=[(0, 4, 4)])
    bench = script(ROOT / "benchmarks" / "melody_cross_domain.py")
    genres = {"duet": (["a", "b"], lambda _: duet)}
    return bench.measure(str(bundle), genres, "generated duets", {"duet": "a tune over a bass line"})


@pytest.fixture
def installed(released, monkeypatch) -> Path:
    monkeypatch.setenv("MIDIBERT_MODELS", str(released[1]))
    return released[1]


def test_export_writes_bundles_cards_and_index(released):
    run_dir, models = released
    index = packaged(models)
    assert sorted(index) == [f"midibert-tiny-{t}" for t in sorted(TASKS)]
    for name, entry in index.items():
        folder = models / entry["path"]
        assert sorted(p.name for p in folder.iterdir()) == [
            "MODEL_CARD.md",
            "config.json",
            "model.safetensors",
            "tokenizer.json",
        ]
        with safe_open(folder / "model.safetensors", "pt") as f:
            assert f.metadata()["midibert_weights"] == "int8"  # tiny matrices stay fp16 (test_bundle checks int8)
        assert entry["default"] and entry["licence"] == "MIT" and entry["dataset"] == "sample"
        card = (folder / "MODEL_CARD.md").read_text()
        # the card's figures are the export's own measurement of the shipped bundle, and it names both commands
        assert f"{entry['test']['accuracy']:.2%}" in card and f"{entry['test']['macro_f1']:.4f}" in card
        assert "python -m midibert.run experiment=demo" in card and "midibert release export" in card
        for section in ("## Data", "## Recipe", "## Test scores", "## Limits", "## Licence"):
            assert section in card, (name, section)
        results = json.loads((run_dir / f"{entry['task']}-bert" / "results.json").read_text())
        level = results["levels"].get("note") or results["levels"]["piece"]
        assert f"{level['accuracy']:.2%}" in card  # the fp32 figure from fine-tuning beside it
    melody_card = (models / "midibert-tiny-melody" / "MODEL_CARD.md").read_text()
    assert "skyline baseline" in melody_card and "majority baseline" in melody_card
    for entry in index.values():  # the index keeps the rule baselines beside the model, and the card says when below
        card = (models / entry["path"] / "MODEL_CARD.md").read_text()
        rules = set(get_task(entry["task"]).baselines)
        assert set(entry["baselines"]) == rules
        results = json.loads((run_dir / f"{entry['task']}-bert" / "results.json").read_text())
        ours = (results["levels"].get("note") or results["levels"]["piece"])["accuracy"]
        assert ("exported below a baseline" in card) == any(b >= ours for b in entry["baselines"].values())
    for card in map(Path.read_text, models.rglob("MODEL_CARD.md")):  # no folder of the machine that made it
        assert str(run_dir) not in card and str(models) not in card and "paths.output_dir" not in card
    in_c = "most used pitch class is C"  # emotion reads windows in C, and its card says so
    assert in_c in (models / "midibert-tiny-emotion" / "MODEL_CARD.md").read_text()
    assert in_c not in (models / "midibert-tiny-melody" / "MODEL_CARD.md").read_text()
    melody, velocity = ((models / f"midibert-tiny-{t}" / "MODEL_CARD.md").read_text() for t in ("melody", "velocity"))
    for moved in ("transposed at random by up to 2 semitones", "moved by up to 8 tokens, anew each pass"):
        assert moved in melody and moved not in velocity
    assert not [p for p in models.iterdir() if p.name.startswith(".")]


def _exported_copy(released, tmp_path: Path, stage: str, source: str, change) -> tuple[Path, dict, Path]:
    """The tiny release run copied, its run `stage` (a copy of run `source` where they differ)
    given a config changed by `change(config, run)`, then exported: (run, index, models folder)."""
    import shutil

    from omegaconf import OmegaConf

    run = tmp_path / "runs" / "run" / released[0].name
    shutil.copytree(released[0], run)
    if stage != source:
        shutil.copytree(run / source, run / stage)
    config = OmegaConf.load(run / stage / "config.yaml")
    change(config, run)
    OmegaConf.save(config, run / stage / "config.yaml")
    release.export(run, tmp_path / "models", allow_below_baselines=True)
    return run, packaged(tmp_path / "models"), tmp_path / "models"


def _card_of(models: Path, index: dict, name: str) -> str:
    return (models / index[name]["path"] / "MODEL_CARD.md").read_text()


def test_extra_training_data_is_on_the_card_and_in_the_licence(released, tmp_path):
    """A melody run whose training split also held another dataset (POP909's `extra_train`) names
    it on its card, in the index and in its licence, and never the folder it was read from; the
    note features its head read are in the card's recipe."""

    def extra(config, run):
        config.task.data.options = {"extra_train": "madrigals", "extra_copies": 8, "extra_path": str(tmp_path / "m"),
                                    "extra_augment": ["octave"]}  # fmt: skip
        config.task.note_features = ["top_line"]

    _, index, models = _exported_copy(released, tmp_path, "melody-bert", "melody-bert", extra)
    entry, card = index["midibert-tiny-melody"], _card_of(models, index, "midibert-tiny-melody")
    assert "Its training split also held **madrigals**, every piece 8 times (read half of them through `octave`" in card
    assert "- madrigals (fine-tuning): public-domain music" in card
    assert "for each note, the answer of the rule top_line (1 or 0, computed from the tokens)" in card
    assert entry["data"].startswith("sample + madrigals") and entry["licence"] == "research use only"
    assert str(tmp_path / "m") not in card + json.dumps(entry) and "options" not in entry["test"]


def test_the_model_a_run_went_on_from_is_not_shipped(released, tmp_path):
    """pipeline.then: the melody run fine-tuned on from melody-bert's model is the one exported; its
    card says how it was made in two steps, and its licence still follows the pre-training."""
    from omegaconf import OmegaConf

    def went_on(config, run):
        config.pretrained, config.trainer.max_steps = str(run / "melody-bert" / "bundle"), 3

    run, index, models = _exported_copy(released, tmp_path, "melody-bert-then", "melody-bert", went_on)
    assert sorted(index) == [f"midibert-tiny-{t}" for t in sorted(TASKS)]
    card = _card_of(models, index, "midibert-tiny-melody")
    first = OmegaConf.load(run / "melody-bert" / "config.yaml").trainer.max_steps
    assert f"- First fine-tuning: up to {first} steps" in card and "- Fine-tuning: up to 3 steps" in card
    assert "Pre-trained (masked language model) on sample" in card
    assert "First fine-tuning" not in _card_of(models, index, "midibert-tiny-velocity")
    lineage = [p.name for p, _ in release._lineage(run / "melody-bert-then", run)]  # whose commands the card names
    assert lineage == ["pretrain", "melody-bert", "melody-bert-then"]


def test_a_refit_is_shipped_over_its_seeds_and_tested_on_the_held_out_songs(released, tmp_path):
    """pipeline.refit on an EMOPIA-shaped folder: the refit is exported, not the seed run; its test
    split and its rule baselines are the held-out songs, and its card says how it was made. Without
    it the seed run ships, measured on the held-out songs beside the note statistics, as
    benchmarks/emotion_holdout.py measures it."""
    from midibert.finetune import finetune
    from tests.hydra_configs import config

    emopia_layout(tmp_path / "emopia", n_songs=16)
    run = tmp_path / "runs" / "run" / "emo"
    held = ["+task.data.options.holdout=0.3", f"task.data.path={tmp_path / 'emopia'}"]
    encoder = f"pretrained={released[0] / 'pretrain' / 'bundle'}"
    tiny = [encoder, "trainer.max_steps=2", "trainer.val_check_interval=2", "model.head.hidden=16"]
    stages = {
        "emotion-bert-seed1": ["model=bert", *tiny, "seed=1", "split_seed=1"],
        "emotion-bert-refit": ["model=bert", *tiny, "+task.data.options.refit=true"],
        "emotion-majority-refit": ["model=majority", "+task.data.options.refit=true"],
        "emotion-features-refit": ["model=features", "+task.data.options.refit=true"],
        # tested on the same split seed as the refit but not on the held-out songs: not its baseline
        "emotion-majority-seed42": ["model=majority"],
    }
    for name, overrides in stages.items():
        finetune(
            config("finetune", ["task=emotion", "logger=csv", *held, *overrides, f"run_dir={run / name}"], tmp_path)
        )
    out = tmp_path / "models"
    release.export(run, out, allow_below_baselines=True)
    index = packaged(out)
    (entry,) = index.values()
    card = (out / entry["path"] / "MODEL_CARD.md").read_text()
    refit = json.loads((run / "emotion-bert-refit" / "results.json").read_text())
    held_out = split_sources("emopia", split="holdout", path=tmp_path / "emopia", holdout=0.3)[0]
    assert entry["test"]["n"] == refit["levels"]["piece"]["n"] == len(held_out) > 0
    assert entry["test"]["options"] == {"holdout": 0.3, "refit": True}
    majority = json.loads((run / "emotion-majority-refit" / "results.json").read_text())
    assert entry["baselines"]["majority"] == round(majority["levels"]["piece"]["accuracy"], 6)
    assert "the held-out songs are the test split" in card and "emotion-bert-seed<n> stages" in card
    assert "choice of seed" not in card and "holdout" not in entry  # its test split is the held-out songs
    # without the refit, seed 1 ships, and its card and `midibert models` show it on the held-out songs
    (run / "emotion-bert-refit").rename(tmp_path / "emotion-bert-refit")
    release.export(run, tmp_path / "seeded", allow_below_baselines=True)
    (entry,) = packaged(tmp_path / "seeded").values()
    held = entry["holdout"]
    assert (held["n"], held["songs"]) == (len(held_out), len({p.group for p in held_out}))
    shipped = tmp_path / "seeded" / entry["path"]
    (row,) = [
        r
        for r in script(ROOT / "benchmarks" / "emotion_holdout.py").evaluate_run(run, str(shipped))
        if "shipped" in r["model"]
    ]
    assert (held["accuracy"], held["statistics"]) == (round(row["accuracy"], 6), round(row["statistics_accuracy"], 6))
    card = (shipped / "MODEL_CARD.md").read_text()
    assert f"**Songs no choice saw.** On the {held['n']} pieces of the {held['songs']} songs held out" in card
    assert (
        f"{held['accuracy']:.2%}" in card
        and f"note-statistics baseline fitted to this model's training pieces: {held['statistics']:.2%}" in card
    )
    env = {**os.environ, "MIDIBERT_MODELS": str(tmp_path / "seeded")}
    listed = subprocess.run([sys.executable, "-m", "midibert", "models"], capture_output=True, text=True, env=env)
    assert f"{held['accuracy']:.2%} of {held['n']} held-out pieces of {held['songs']} songs" in listed.stdout


def test_the_cross_domain_figure_is_on_the_card_of_the_model_it_scored(released, tmp_path):
    """The melody card and `midibert models` show the benchmark's figure beside the skyline's, with
    its sources and command; the other models have none; a result of other weights is refused."""
    run_dir, models = released
    index = packaged(models)
    cross = index["midibert-tiny-melody"]["cross_domain"]
    scored = duets_scored(run_dir / "melody-bert" / "bundle")["genres"]  # deterministic: measured again
    assert (cross["f1"], cross["line_f1"], cross["skyline_f1"], cross["top_line_f1"]) == tuple(
        round(scored["all"][k]["f1"], 4) for k in ("model", "line", "skyline", "top_line")
    )
    assert cross["files"] == 2 and cross["genres"]["duet"]["source"] == "a tune over a bass line"
    assert [n for n, e in index.items() if "cross_domain" in e] == ["midibert-tiny-melody"]
    card = (models / "midibert-tiny-melody" / "MODEL_CARD.md").read_text()
    line = next(x for x in card.splitlines() if x.startswith("**Music it never saw.**"))
    assert f"melody F1 {cross['f1']:.3f}" in line and f"skyline rule {cross['skyline_f1']:.3f}" in line
    assert f"top-line rule (the highest note sounding) {cross['top_line_f1']:.3f}" in line
    assert f"as one line (`midibert classify --line`) {cross['line_f1']:.3f}" in line
    assert "a tune over a bass line: 2 files" in line
    assert "`python benchmarks/melody_cross_domain.py --model runs/run/demo/melody-bert/bundle`" in line
    assert "--cross-domain cross_domain.json" in card  # the export command, without the folder it was in
    env = {**os.environ, "MIDIBERT_MODELS": str(models)}
    listed = subprocess.run([sys.executable, "-m", "midibert", "models"], capture_output=True, text=True, env=env)
    assert (
        f"melody F1 {cross['f1']:.3f} (skyline {cross['skyline_f1']:.3f}, top line {cross['top_line_f1']:.3f}) "
        "on 2 files of duet (generated duets)" in listed.stdout
    )
    other = json.loads(json.dumps(duets_scored(run_dir / "melody-bert" / "bundle")))
    other["weights_sha256"] = "0" * 64
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="other.json: scored a model that is none of the bundles"):
        release.export(run_dir, tmp_path / "models", cross_domain=[tmp_path / "other.json"])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json: not a result of benchmarks/melody_cross_domain.py"):
        release.export(run_dir, tmp_path / "models", cross_domain=[tmp_path / "bad.json"])
    assert not (tmp_path / "models").exists()


def test_card_figures_are_reproducible(released):
    """Measuring the shipped melody bundle again through the public API gives the index's figures."""
    run_dir, models = released
    entry = packaged(models)["midibert-tiny-melody"]
    clf = Classifier.from_pretrained(models / entry["path"], device="cpu", answer=False)  # its own classes
    pieces, sources = split_sources(
        "sample", run_dir.parents[1] / "cache" / "sample", kind="score", split_seed=entry["test"]["split_seed"]
    )
    m = score_predictions(clf.predict_batch(sources), pieces)
    assert (round(m["accuracy"], 6), m["n"]) == (entry["test"]["accuracy"], entry["test"]["n"])


def test_a_model_below_a_rule_baseline_is_refused(released, tmp_path, monkeypatch):
    """The gate names the figures; nothing is written, the index is untouched."""
    run_dir, _ = released
    task = get_task("melody")
    results = {"levels": {"note": {"accuracy": 0.5}}}
    rules = {"skyline": {"levels": {"note": {"accuracy": 0.6}}}, "majority": {"levels": {"note": {"accuracy": 0.4}}}}
    message = release._gate("m", task, results, rules, run_dir)
    assert "50.00% on its test split does not beat every rule baseline (skyline 60.00%)" in message
    assert "no majority baseline run" in release._gate("m", task, results, {"skyline": rules["skyline"]}, run_dir)
    assert release._gate("m", task, {"levels": {"note": {"accuracy": 0.7}}}, rules, run_dir) == ""
    monkeypatch.setattr(release, "_gate", lambda name, *a: f"{name}: below the skyline")
    (tmp_path / "index.json").write_text('{"format_version": 1, "models": {}}')
    with pytest.raises(ValueError, match="below the skyline"):
        release.export(run_dir, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["index.json"]


def test_packaged_encoder_from_the_run(released, tmp_path, monkeypatch):
    """`midibert release encoder`: the pre-training as a packaged encoder with its card, listed
    beside the task models, usable by name for embeddings and fine-tuning."""
    import midibert

    run_dir, _ = released
    made = run("release", "encoder", str(run_dir / "pretrain"), str(tmp_path))
    assert made.returncode == 0, made.stderr[-2000:]
    entry = packaged(tmp_path)["midibert-tiny-score"]
    assert entry["task"] == ENCODER and entry["kind"] == "score" and entry["masked"]["Pitch"]["masked"] > 0
    card = (tmp_path / "midibert-tiny-score" / "MODEL_CARD.md").read_text()
    for section in ("## Data", "## Recipe", "## Masked-token accuracy", "## Licence"):
        assert section in card
    assert "python -m midibert.run experiment=demo" in card and str(tmp_path) not in card
    monkeypatch.setenv("MIDIBERT_MODELS", str(tmp_path))
    v = midibert.embed(generated_song(tmp_path / "song.mid"), model="midibert-tiny-score")
    assert v.shape == (json.loads((tmp_path / "midibert-tiny-score" / "config.json").read_text())["model"]["hidden"],)
    assert "midibert-tiny-score | score |" in run("models").stdout


def test_refused_export_leaves_nothing(released, tmp_path, monkeypatch):
    run_dir, _ = released
    monkeypatch.setattr(release, "MIN_AGREEMENT", 1.01)  # no model can agree more than fully
    (tmp_path / "index.json").write_text('{"format_version": 1, "models": {}}')
    with pytest.raises(ValueError, match="agree with fp32 on only"):
        release.export(run_dir, tmp_path, allow_below_baselines=True)
    assert [p.name for p in tmp_path.iterdir()] == ["index.json"]
    assert json.loads((tmp_path / "index.json").read_text())["models"] == {}
    refused = run("release", "export", str(tmp_path / "no-run"), str(tmp_path))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr


@pytest.mark.parametrize(
    "datasets, terms",
    [
        (["pop909"], "MIT"),
        (["emopia"], "non-commercial, share-alike"),
        (["pianist8"], "research use only"),
        (["pop909", "pop1k7", "asap", "pianist8"], "research use only, non-commercial, share-alike"),
        (["sample"], "MIT"),
        (["pop909", "madrigals"], "research use only"),  # music21's corpus states no terms for them
    ],
)
def test_licence_is_inherited_from_every_dataset(datasets, terms):
    short, licences = release.licence_terms(datasets)
    assert short == terms and list(licences) == datasets


def test_extra_training_data_is_named_and_never_read_into_the_test_split():
    data = {
        "dataset": "pop909",
        "options": {"timing": "both", "extra_train": "madrigals", "extra_path": "m", "holdout": 0.1},
    }
    assert release._extra_datasets({"task": {"data": data}}) == ["madrigals"]
    assert release._test_reading(data) == {"holdout": 0.1}  # and no folder of the machine reaches the index
    assert release._extra_datasets({"task": {"data": {"dataset": "pop909"}}}) == []


def test_dataset_without_stated_terms_is_not_shipped():
    with pytest.raises(ValueError, match="folder: no licence recorded.*cannot be shipped"):
        release.licence_terms(["pop909", "folder"])


def generated_song(path: Path) -> Path:
    """Four bars: a melody line above held chords, and a drum track the models must ignore."""
    melody = [(i * 240, 240, 72 + (i * 5) % 12, 90) for i in range(32)]
    chords = [(b * 1920, 1920, p, 60) for b in range(4) for p in (48, 52, 55)]
    score = make_score({"Lead": melody, "Chords": chords}, drums={"Drums": [(i * 480, 60, 36, 100) for i in range(16)]})
    score.dump_midi(str(path))
    return path


def test_cli_and_api_use_the_packaged_model_by_task(installed, tmp_path):
    song = generated_song(tmp_path / "song.mid")
    out = run("classify", str(song), "--task", "melody", "--out", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    tracks = {t.name: len(t.notes) for t in symusic.Score(str(tmp_path / "out" / "song.mid")).tracks}
    assert sum(tracks.values()) == 32 + 12 and set(tracks) <= {"MELODY", "BRIDGE", "ACCOMPANIMENT"}
    for task in TASKS:
        res = getattr(mc, task)(song)  # no model=: the packaged one
        assert res.task == task and (len(res.labels) == 44 if res.level == "note" else res.labels in res.class_names)
    table = run("models")
    assert table.returncode == 0 and all(f"midibert-tiny-{t} (default) | {t} |" in table.stdout for t in TASKS)
    rows = [json.loads(line) for line in run("models", "--json").stdout.splitlines()]
    assert {r["name"] for r in rows} == {f"midibert-tiny-{t}" for t in TASKS} and all(r["licence"] for r in rows)


# The models shipped in the package itself: whatever midibert/models/index.json lists.
SHIPPED = {n: m for n, m in packaged(PACKAGE_MODELS).items() if m["task"] != ENCODER}
ENCODERS = {n: m for n, m in packaged(PACKAGE_MODELS).items() if m["task"] == ENCODER}


@pytest.fixture
def shipped(monkeypatch):
    monkeypatch.delenv("MIDIBERT_MODELS", raising=False)


def test_shipped_models_fit_the_package_budget():
    total = sum(p.stat().st_size for p in PACKAGE_MODELS.rglob("*") if p.is_file())
    assert total <= 20e6, f"midibert/models holds {total / 1e6:.1f} MB, over the 20 MB budget"
    for name, entry in {**SHIPPED, **ENCODERS}.items():  # the export measured it; a hand-edited index must not skip it
        assert entry["licence"], name
        if name in ENCODERS:
            assert entry["embedding_agreement_fp32"] >= 0.99, name
        else:
            assert entry["test"]["unit"] == "pieces" or entry["weights_agreement_fp32"] >= release.MIN_AGREEMENT, name


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_predicts_a_generated_song(name, shipped, tmp_path):
    clf = Classifier.from_pretrained(name)
    res = clf.predict(generated_song(tmp_path / "song.mid"))
    assert res.task == SHIPPED[name]["task"]
    assert len(res.labels) == 44 if res.level == "note" else res.labels in clf.class_names


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_shipped_encoder_embeds_a_generated_song(name, shipped, tmp_path):
    import midibert

    v = midibert.embed(generated_song(tmp_path / "song.mid"), model=name)
    assert v.ndim == 1 and np.isfinite(v).all()
    card = (PACKAGE_MODELS / ENCODERS[name]["path"] / "MODEL_CARD.md").read_text()
    assert "## Masked-token accuracy" in card and "/work" not in card


@pytest.mark.parametrize("name", sorted(n for n, m in SHIPPED.items() if m["dataset"] == "pop909"))
def test_shipped_note_model_beats_the_baseline_on_pop909_test_songs(name, shipped):
    """Melody: above the skyline on the same notes; velocity: above the most common bin of those notes."""
    clf = Classifier.from_pretrained(name, answer=False)  # scored in the model's own classes
    pieces, sources = split_sources("pop909", shared("pop909"), kind=clf.tokenizer.config.kind, limit=10)
    preds = clf.predict_batch(sources)
    ours = score_predictions(preds, pieces)["accuracy"]
    notes = [p.encoding.notes for p in preds]
    kept = [n.tokenized for n in notes]  # the notes the model scored on, in any order
    if clf.task["name"].startswith("melody"):
        last = len(clf.class_names) - 1
        truth = np.concatenate([melody_classes(n.track_name[k], last + 1) for n, k in zip(notes, kept)])
        sky = np.concatenate(
            [
                np.where(skyline_melody(n.pitch[k], n.onset[k]) == 1, 0, last)  # as finetune's skyline
                for n, k in zip(notes, kept)
            ]
        )
        baseline = float((truth == sky).mean())
    else:
        truth = np.concatenate([velocity_classes(n.velocity[k]) for n, k in zip(notes, kept)])
        baseline = np.bincount(truth).max() / len(truth)
    assert ours > baseline, (name, ours, baseline)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_predicts_a_real_pop909_test_song(name, shipped):
    song = shared("pop909", "POP909", "011", "011.mid")  # in MidiBERT-Piano's test split: no model trained on it
    res = Classifier.from_pretrained(name).predict(song)
    if res.level == "note":
        assert len(res.labels) == len(res.probs) > 1000 and "" not in res.labels
    else:
        assert res.labels in res.class_names and abs(res.probs.sum() - 1) < 1e-5


@pytest.mark.slow  # the whole test split of each piece-level task: minutes on a CPU
@pytest.mark.parametrize("name", sorted(n for n, m in SHIPPED.items() if m["test"]["unit"] == "pieces"))
def test_shipped_piece_model_reproduces_its_card(name, shipped):
    """The index's figure, measured again on the same split (a seeded one under the fine-tuning seed)."""
    from midibert.datasets import get_info

    entry = SHIPPED[name]
    clf = Classifier.from_pretrained(name)
    pieces, sources = split_sources(
        entry["dataset"],
        shared(entry["dataset"]),
        kind=clf.tokenizer.config.kind,
        split_seed=entry["test"]["split_seed"],
        **entry["test"].get("options", {}),  # EMOPIA's held-out share, which no split holds
    )
    m = score_predictions(clf.predict_batch(sources), pieces, get_info(entry["dataset"]).label_key)
    assert (round(m["accuracy"], 6), m["n"]) == (entry["test"]["accuracy"], entry["test"]["n"])


def test_card_names_every_command_that_made_the_run(tmp_path):
    """A main job resumed with other overrides: Hydra keeps only the last; the card cites both."""
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- experiment=demo\n- seed=7\n")
    assert release._command(tmp_path) == "`python -m midibert.run experiment=demo seed=7`"  # runs before the record
    (tmp_path / "commands.txt").write_text("python -m midibert.run experiment=demo\npython -m midibert.run 'a b'\n")
    assert release._command(tmp_path) == (
        "`python -m midibert.run experiment=demo`, resumed by `python -m midibert.run 'a b'`"
    )
    # a model's card names the commands that ran the stages it came from, where they kept a record
    pre, first, then = (tmp_path / name for name in ("pretrain", "melody-bert", "melody-bert-then"))
    for stage, ran in ((pre, "experiment=demo"), (first, "experiment=demo"), (then, "'a b'")):
        stage.mkdir()
        (stage / "commands.txt").write_text(f"python -m midibert.run {ran}\n")
    assert release._command(tmp_path, pre, first) == "`python -m midibert.run experiment=demo`"
    assert release._command(tmp_path, pre, first, then) == release._command(tmp_path)
    assert release._command(tmp_path, tmp_path / "older-stage") == release._command(tmp_path)  # no record: the run's
