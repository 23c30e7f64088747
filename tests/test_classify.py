"""Inference: one prediction per note in file order, any source type, batches, bundles, the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import symusic

import midibert.classify as mc
from midibert import MidiError
from midibert.bundle import load_bundle, save_bundle
from midibert.classify import Classifier, int8_engine
from midibert.tokenize import Tokenizer
from midibert.tokenize.labels import VELOCITY_EDGES, melody_labels, velocity_labels
from tests.conftest import ROOT, SHIPPED_SONGS, shared
from tests.factories import MELODY, STYLE, VELOCITY, make_bundle
from tests.midi_factory import make_score


@pytest.fixture(scope="module")
def pieces() -> list[Path]:
    """Two shipped scores and the shipped performance, so every test here runs on any machine."""
    return SHIPPED_SONGS[:3]


@pytest.fixture(scope="module")
def melody_dir(tmp_path_factory, pieces) -> Path:
    return make_bundle(
        tmp_path_factory.mktemp("m") / "melody", "melody", "token", MELODY, train_on=pieces[0], label_fn=melody_labels
    )


@pytest.fixture(scope="module")
def clf(melody_dir) -> Classifier:
    return Classifier.from_pretrained(melody_dir)


def file_notes(path: Path) -> list[tuple[str, int, int]]:
    """(track, start, pitch) of every non-drum note, track by track in each track's own order."""
    score = symusic.Score(str(path))
    return [(t.name, n.time, n.pitch) for t in score.tracks if not t.is_drum for n in t.notes]


def test_one_prediction_per_note_in_file_order(clf, songs):
    res = clf.predict(songs[1])
    notes = file_notes(songs[1])
    assert res.level == "note" and len(res.labels) == len(res.probs) == len(notes)
    assert "" not in res.labels and set(res.labels) <= set(MELODY.values())
    assert list(zip(res.track, res.onset.tolist(), res.pitch.tolist())) == notes
    np.testing.assert_allclose(res.probs.sum(1), 1, atol=1e-5)
    assert abs(sum(res.shares().values()) - 1) < 1e-9


def test_every_source_type_gives_the_same_prediction(clf, pieces):
    path = pieces[1]
    by_path = clf.predict(path)
    for src in (path.read_bytes(), symusic.Score(str(path))):
        res = clf.predict(src)
        assert res.labels == by_path.labels
        np.testing.assert_allclose(res.probs, by_path.probs, atol=1e-6)
    import miditoolkit
    import pretty_midi

    for src in (miditoolkit.MidiFile(str(path)), pretty_midi.PrettyMIDI(str(path))):
        assert len(clf.predict(src).labels) == len(by_path.labels)  # these parsers may re-time; counts hold


def test_batch_equals_single_predictions(melody_dir, pieces):
    """fp32: any batching gives the same probabilities. int8 scales activations per batch, so it
    never batches one piece with another: a piece's labels don't depend on the pieces predicted
    with it."""
    one = Classifier.from_pretrained(melody_dir, device="cpu", quantize=False, batch_size=1)
    batch = Classifier.from_pretrained(melody_dir, device="cpu", quantize=False, batch_size=32)
    assert one.predict_batch([]) == []
    for path, res in zip(pieces, batch.predict_batch(pieces)):  # trimmed, padded batches
        single = one.predict(path)
        assert res.source == str(path) and res.labels == single.labels
        np.testing.assert_allclose(res.probs, single.probs, atol=1e-5)
    assert Classifier.from_pretrained(melody_dir, device="cpu").batch_size == 1  # CPU default: a window at a time
    int8 = Classifier.from_pretrained(melody_dir, device="cpu", quantize=True, batch_size=8)
    for path, res in zip(pieces, int8.predict_batch(pieces[::-1])[::-1]):
        single = int8.predict(path)
        assert res.labels == single.labels
        np.testing.assert_array_equal(res.probs, single.probs)


def test_compact_weights_and_int8_compute_agree_with_fp32(tmp_path):
    """The packaged size (bert-small), trained a little: int8-stored weights, and int8 linear layers at
    run time, label at least 99.5 % of the notes of POP909 test songs as fp32 does."""
    from midibert.evaluate import agreement, split_sources

    train = shared("pop909", "POP909", "001", "001.mid")
    full = make_bundle(
        tmp_path / "fp32",
        "melody",
        "token",
        MELODY,
        train_on=train,
        label_fn=melody_labels,
        preset="bert-small",
        lr=5e-4,
        steps=60,
    )
    b = load_bundle(full)
    small = save_bundle(
        tmp_path / "int8", b.state_dict, b.model_config, b.tokenizer, task=b.task, id2label=b.id2label, weights="int8"
    )
    _, sources = split_sources("pop909", shared("pop909"), kind="score", limit=20)
    fp32 = Classifier.from_pretrained(full, device="cpu", quantize=False).predict_batch(sources)
    assert len({lab for p in fp32 for lab in p.labels}) >= 2  # trained enough to tell classes apart
    stored = Classifier.from_pretrained(small, device="cpu", quantize=False).predict_batch(sources)
    computed = Classifier.from_pretrained(full, device="cpu", quantize=True).predict_batch(sources)
    assert agreement(stored, fp32) >= 0.995 and agreement(computed, fp32) >= 0.995


def test_quantize_names_an_engine_or_is_refused(melody_dir):
    with pytest.raises(ValueError, match="'bogus': not one of this torch's engines"):
        Classifier.from_pretrained(melody_dir, device="cpu", quantize="bogus")
    assert Classifier.from_pretrained(melody_dir, device="cpu", quantize=False).engine is None


def test_cpu_default_is_int8_on_windows_that_do_not_overlap(melody_dir, pieces):
    """benchmarks/classify.py: together 2x fp32's speed at the same accuracy; either alone is not."""
    clf = Classifier.from_pretrained(melody_dir, device="cpu")
    assert clf.engine == int8_engine() and clf.overlap == 0
    assert Classifier.from_pretrained(melody_dir, device="cpu", quantize=False, overlap=8).overlap == 8
    res = clf.predict(pieces[0])
    assert len(res.labels) and all(res.labels)  # still every note labelled, once


def test_to_midi_melody_tracks(clf, pieces, tmp_path):
    res = clf.predict(pieces[0])
    out = symusic.Score(str(res.to_midi(tmp_path / "a" / "out.mid")))
    assert {t.name for t in out.tracks} == {n.upper() for n in res.labels}  # MIDI keeps no empty tracks
    assert len({t.name for t in out.tracks}) >= 2  # the trained model tells some melody from accompaniment
    got = sorted((n.time, n.pitch) for t in out.tracks for n in t.notes)
    assert got == sorted((s, p) for _, s, p in file_notes(pieces[0]))
    for t in out.tracks:
        assert len(t.notes) == res.labels.count(t.name.lower())
    assert json.loads(res.to_json())["notes"][0].keys() == {"start", "pitch", "track", "label"}


def test_velocity_to_midi_applies_predicted_velocities(tmp_path, pieces):
    bundle = make_bundle(
        tmp_path / "vel",
        "velocity",
        "token",
        VELOCITY,
        spec="cp-performance",
        train_on=pieces[0],
        label_fn=velocity_labels,
        hide=("Velocity",),
    )
    res = mc.velocity(pieces[2], model=bundle)
    edges = np.asarray(VELOCITY_EDGES)
    expected = ((edges[:-1] + edges[1:]) // 2)[res.probs.argmax(1)]
    out = symusic.Score(str(res.to_midi(tmp_path / "vel.mid")))
    got = sorted((n.time, n.pitch, n.velocity) for t in out.tracks for n in t.notes)
    assert got == sorted(zip(res.onset.tolist(), res.pitch.tolist(), expected.tolist()))


def test_hidden_family_does_not_change_predictions(tmp_path, pieces):
    bundle = make_bundle(tmp_path / "vel", "velocity", "token", VELOCITY, spec="cp-performance", hide=("Velocity",))
    clf = Classifier.from_pretrained(bundle)
    score = symusic.Score(str(pieces[2]))
    louder = score.copy()
    for t in louder.tracks:
        for n in t.notes:
            n.velocity = 127
    np.testing.assert_allclose(clf.predict(louder).probs, clf.predict(score).probs, atol=1e-6)


def test_a_model_reading_pieces_in_c_ignores_their_key(tmp_path):
    """A bundle fine-tuned with `task.key_to_c` hears a tune in G and the same tune in C alike; one
    fine-tuned without it does not."""

    def tune(shift: int) -> symusic.Score:
        g_major = [67, 71, 74, 67, 62, 66, 67, 79]  # G most used
        return make_score({"Piano": [(i * 240, 240, p + shift, 80) for i, p in enumerate(g_major)]})

    for key_to_c in (True, False):
        bundle = make_bundle(
            tmp_path / str(key_to_c), "emotion", "sequence", dict(enumerate("Q1 Q2 Q3 Q4".split())), key_to_c=key_to_c
        )
        clf = Classifier.from_pretrained(bundle)
        in_g, in_c = (clf.predict(tune(s)).probs for s in (0, 5))
        assert np.allclose(in_g, in_c, atol=1e-6) == key_to_c


def test_velocities_that_look_entered_are_a_caveat(tmp_path):
    """A model that reads velocity says when a file's velocities look entered, not played (a
    handful of values), in the prediction, its JSON and on the CLI's stderr; with played ones, or a
    model that reads no velocity, it says nothing."""
    entered = [(i * 240, 240, 60 + i % 12, 80 + 20 * (i % 2)) for i in range(48)]  # two loudnesses
    played = [(t, d, p, 30 + (7 * i) % 90) for i, (t, d, p, _) in enumerate(entered)]  # 48 of them
    quadrants = dict(enumerate("Q1 Q2 Q3 Q4".split()))
    bundle = make_bundle(tmp_path / "perf", "emotion", "sequence", quadrants, spec="cp-performance")
    clf = Classifier.from_pretrained(bundle)
    said = clf.predict(make_score({"Piano": entered}))
    assert len(said.caveats) == 1 and said.caveats[0].startswith("2 distinct velocities: the file looks entered")
    assert json.loads(said.to_json())["caveats"] == list(said.caveats)
    assert clf.predict(make_score({"Piano": played})).caveats == ()
    score_model = Classifier.from_pretrained(make_bundle(tmp_path / "score", "emotion", "sequence", quadrants))
    assert score_model.predict(make_score({"Piano": entered})).caveats == ()
    make_score({"Piano": entered}).dump_midi(str(tmp_path / "entered.mid"))
    out = run("classify", str(tmp_path / "entered.mid"), "--model", str(bundle))
    assert out.returncode == 0 and f"{tmp_path / 'entered.mid'}: 2 distinct velocities" in out.stderr


def test_style_gives_one_label_per_piece(tmp_path, pieces):
    files = pieces[:2]
    bundle = make_bundle(tmp_path / "style", "style", "sequence", STYLE)
    res = mc.style(files[0], model=bundle)
    assert res.level == "piece" and res.labels in STYLE.values() and res.probs.shape == (8,)
    assert res.label == res.labels and abs(res.probs.sum() - 1) < 1e-5
    batch = Classifier.from_pretrained(bundle).predict_batch(files)
    assert [r.labels for r in batch][0] == res.labels and len(batch) == 2
    out = symusic.Score(str(res.to_midi(tmp_path / "style.mid")))
    assert res.labels in out.markers[0].text
    with pytest.raises(ValueError, match="not 'melody'"):
        mc.melody(files[0], model=bundle)


@pytest.mark.parametrize(
    "content, cause",
    [(b"", "empty"), (b"MThd garbage" * 3, "not a readable MIDI"), (b"hello, not midi at all", "not a readable MIDI")],
)
def test_bad_input_raises_midi_error_naming_the_file(clf, tmp_path, content, cause):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(content)
    with pytest.raises(MidiError, match=f"bad.mid.*{cause}"):
        clf.predict(bad)


def test_piece_without_notes_raises_midi_error(clf, tmp_path):
    path = tmp_path / "silent.mid"
    symusic.Score(480).dump_midi(str(path))
    with pytest.raises(MidiError, match="silent.mid.*no notes"):
        clf.predict(path)


def test_mismatched_bundles_are_refused(melody_dir, tmp_path):
    import shutil

    def copy(name: str) -> Path:
        return Path(shutil.copytree(melody_dir, tmp_path / name))

    swapped = copy("tokenizer")
    Tokenizer.create("remi", kind="score").save(swapped)
    with pytest.raises(ValueError, match="does not match"):
        Classifier.from_pretrained(swapped)
    newer = copy("newer")
    config = json.loads((newer / "config.json").read_text())
    (newer / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(ValueError, match="newer"):
        Classifier.from_pretrained(newer)
    bigger = copy("weights")  # same vocabulary, another hidden size than the weights have
    config["model"]["hidden"], config["model"]["heads"] = 64, 2
    (bigger / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="weights do not fit"):
        Classifier.from_pretrained(bigger)


def test_save_pretrained_round_trip(clf, pieces, tmp_path):
    again = Classifier.from_pretrained(clf.save_pretrained(tmp_path / "copy"))
    assert again.task == clf.task and again.class_names == clf.class_names
    assert again.tokenizer.config == clf.tokenizer.config and again.bundle.model_config == clf.bundle.model_config
    np.testing.assert_array_equal(again.predict(pieces[0]).probs, clf.predict(pieces[0]).probs)


def test_module_docstring_example_runs(melody_dir, pieces, tmp_path, monkeypatch):
    """The API example at the top of classify.py, with its placeholders pointed at real files."""
    code = re.search(r"\n\n((?:    .*\n|\n)+)\n", mc.__doc__).group(1)
    code = "\n".join(line[4:] for line in code.splitlines())
    code = re.sub(r'"runs/[^"]*"', repr(str(melody_dir)), code).replace('"song.mid"', repr(str(pieces[0])))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "classify-docstring", "exec"), {})
    assert (tmp_path / "annotated.mid").is_file()


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "midibert", *args], capture_output=True, text=True, cwd=ROOT)


def test_cli_table_bad_file_json_and_out(melody_dir, pieces, tmp_path):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"not midi" * 10)
    files = [str(pieces[0]), str(bad), str(pieces[1])]
    out = run("classify", *files, "--model", str(melody_dir), "--out", str(tmp_path / "out"))
    assert out.returncode == 1, out.stderr
    assert "broken.mid" in out.stderr and "Traceback" not in out.stderr
    rows = out.stdout.splitlines()
    assert [r.split("\t")[0] for r in rows] == [files[0], files[2]] and "accompaniment" in rows[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [pieces[0].name, pieces[1].name]

    js = run("classify", *files[::2], "--model", str(melody_dir), "--json")
    assert js.returncode == 0, js.stderr
    lines = [json.loads(line) for line in js.stdout.splitlines()]
    assert [d["source"] for d in lines] == files[::2] and len(lines[0]["notes"]) == len(file_notes(pieces[0]))

    usage = run("classify", files[0], "--model", str(tmp_path))
    assert usage.returncode == 2 and "not a midibert bundle" in usage.stderr


def test_cli_plot_notes(melody_dir, pieces, tmp_path):
    out = run("plot", "notes", str(pieces[0]), "--model", str(melody_dir), "--out", str(tmp_path / "roll.png"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "roll.png").read_bytes()[:4] == b"\x89PNG"
    style = make_bundle(tmp_path / "style", "style", "sequence", STYLE)
    refused = run("plot", "notes", str(pieces[0]), "--model", str(style))
    assert refused.returncode == 2 and "whole pieces" in refused.stderr


def test_cli_one_bad_file_never_stops_the_others(tmp_path, capsys, monkeypatch):
    """Tick overflow (at 480 and 24 ticks per quarter) and an unexpected exception on one file:
    each is one line naming the file, and the good file after them is still classified."""
    from midibert.cli import main
    from tests.midi_factory import overflow_midi

    model = make_bundle(tmp_path / "melody", "melody", "token", MELODY)
    files = []
    for tpq in (480, 24):
        files.append(tmp_path / f"overflow{tpq}.mid")
        files[-1].write_bytes(overflow_midi(tpq))
    files.append(tmp_path / "buggy.mid")
    good = tmp_path / "good.mid"
    for path in (files[-1], good):
        make_score({"MELODY": [(i * 240, 240, 60 + i % 12, 80) for i in range(24)]}).dump_midi(str(path))
    files.append(good)
    real = Classifier.predict

    def predict(self, src):  # a bug that only this file triggers
        if Path(src).name == "buggy.mid":
            raise RuntimeError("something no one foresaw")
        return real(self, src)

    monkeypatch.setattr(Classifier, "predict", predict)
    assert main(["classify", *map(str, files), "--model", str(model)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split("\t")[0] == str(good) and len(out.splitlines()) == 1
    lines = err.splitlines()
    assert len(lines) == 3 and "Traceback" not in err
    assert all(str(files[i]) in lines[i] and "32-bit ticks" in lines[i] for i in (0, 1))
    assert lines[2] == (
        f"midibert: internal error on {files[2]}: RuntimeError: something no one foresaw "
        f"(rerun with --debug for the traceback)"
    )
    assert main(["classify", str(files[2]), "--model", str(model), "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_line_is_the_top_tune_voice(clf, tmp_path):
    """A held upper voice over a moving lower one, each its own track: called tune throughout, the
    line is the upper voice; notes called accompaniment stay so; probabilities stay the model's."""
    score = symusic.Score(480)
    for name, notes in (
        ("Violin I", [(0, 960, 76), (960, 960, 77)]),
        ("Viola", [(t, 240, 60 + t // 240) for t in range(0, 1920, 240)]),
    ):
        track = symusic.Track(name, 0, False)
        for time, duration, pitch in notes:
            track.notes.append(symusic.Note(time, duration, pitch, 80))
        score.tracks.append(track)
    score.dump_midi(str(tmp_path / "duet.mid"))
    res = clf.predict(tmp_path / "duet.mid")
    line = replace(res, labels=["melody"] * len(res.labels)).line()
    assert [lab == "melody" for lab in line.labels] == [t == "Violin I" for t in res.track]
    mixed = replace(res, labels=["accompaniment", "melody"] + ["melody"] * (len(res.labels) - 2)).line()
    assert mixed.labels[:3] == ["accompaniment", "melody", "melody"]  # under a note not called tune: on the line
    np.testing.assert_array_equal(mixed.probs, res.probs)
    with pytest.raises(ValueError, match="melody model"):
        replace(res, level="piece").line()


def test_cli_line_for_melody_models_only(melody_dir, pieces, tmp_path):
    default = run("classify", str(pieces[0]), "--model", str(melody_dir), "--json")
    line = run("classify", str(pieces[0]), "--model", str(melody_dir), "--json", "--line")
    assert default.returncode == line.returncode == 0, line.stderr
    tune = [n["label"] != "accompaniment" for n in json.loads(default.stdout)["notes"]]
    on = [n["label"] != "accompaniment" for n in json.loads(line.stdout)["notes"]]
    assert len(on) == len(tune) and all(t or not o for t, o in zip(tune, on))
    style = make_bundle(tmp_path / "style", "style", "sequence", STYLE)
    refused = run("classify", str(pieces[0]), "--model", str(style), "--line")
    assert refused.returncode == 2 and "--line is for melody models" in refused.stderr and not refused.stdout
