"""Build small MIDI scores in memory for tests: notes, meters, tempos, tracks."""
from __future__ import annotations

import numpy as np
import symusic


def make_score(tracks: dict[str, list[tuple[int, int, int, int]]], tpq: int = 480,
               meters: list[tuple[int, int, int]] = (), tempos: list[tuple[int, float]] = (),
               drums: dict[str, list[tuple[int, int, int, int]]] | None = None) -> symusic.Score:
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
            track.notes = symusic.Note.from_numpy(time=a[:, 0].astype(np.int32), duration=a[:, 1].astype(np.int32),
                                                  pitch=a[:, 2].astype(np.int8), velocity=a[:, 3].astype(np.int8))
        score.tracks.append(track)
    return score
