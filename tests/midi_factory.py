"""Build small MIDI scores in memory for tests: notes, meters, tempos, tracks; a dataset layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import symusic


def make_score(
    tracks: dict[str, list[tuple[int, int, int, int]]],
    tpq: int = 480,
    meters: list[tuple[int, int, int]] = (),
    tempos: list[tuple[int, float]] = (),
    drums: dict[str, list[tuple[int, int, int, int]]] | None = None,
) -> symusic.Score:
    """tracks: name -> [(start_tick, duration_ticks, pitch, velocity)]."""
    score = symusic.Score(tpq)
    for t, n, d in meters:
        score.time_signatures.append(symusic.TimeSignature(t, n, d))
    for t, q in tempos:
        score.tempos.append(symusic.Tempo(t, q))
    for name, notes in list(tracks.items()) + list((drums or {}).items()):
        track = symusic.Track(name, 0, drums is not None and name in drums)
        if notes:
            a = np.asarray(notes, dtype=np.int64)
            track.notes = symusic.Note.from_numpy(
                time=a[:, 0].astype(np.int32),
                duration=a[:, 1].astype(np.int32),
                pitch=a[:, 2].astype(np.int8),
                velocity=a[:, 3].astype(np.int8),
            )
        score.tracks.append(track)
    return score


def emopia_layout(root: Path, n_songs: int = 12, clips: int = 3) -> list[str]:
    """An EMOPIA-shaped folder at `root` (midis/Q<q>_<song>_<clip>.mid, label.csv) of one-note
    clips, quadrants cycling over the songs; returns the song ids."""
    (root / "midis").mkdir(parents=True)
    songs = [f"id_{i:02d}-x" for i in range(n_songs)]  # YouTube ids may contain "_" and "-"
    for i, song in enumerate(songs):
        for clip in range(clips):
            make_score({"Piano": [(0, 480, 60 + clip, 80)]}).dump_midi(
                str(root / "midis" / f"Q{i % 4 + 1}_{song}_{clip}.mid")
            )
    (root / "label.csv").write_text("ID,4Q,annotator\n" + f"Q1_{songs[0]}_0,1,a\n")
    (root / "metadata_by_song.csv").write_text("songID,YouTubeID\n")
    return songs


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    while n := n >> 7:
        out.append(0x80 | (n & 0x7F))
    return bytes(reversed(out))


def overflow_midi(tpq: int = 480, notes: int = 20, delta: int = 0x0FFFFFFF) -> bytes:
    """A valid type-0 MIDI file whose `notes` middle Cs each last `delta` ticks (the largest delta
    a MIDI file can hold): 20 of them add up past the 32-bit tick counter (246 bytes)."""
    body = b"".join(_vlq(0) + bytes([0x90, 60, 90]) + _vlq(delta) + bytes([0x80, 60, 0]) for _ in range(notes))
    body += _vlq(0) + b"\xff\x2f\x00"
    header = (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + tpq.to_bytes(2, "big")
    return b"MThd" + header + b"MTrk" + len(body).to_bytes(4, "big") + body
