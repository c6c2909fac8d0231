from __future__ import annotations

import io
import json

import pytest

from generator.timeline.control_log import (
    ControlLogError,
    ControlLogWriter,
    ControlRecord,
    SessionHeader,
    parse_lines,
    read_control_log,
)


def test_round_trip(tmp_path):
    header = SessionHeader("techno", 7, 128.0, (4, 4), 44100, {"density": 4.0})
    recs = [ControlRecord(16.0, "control", "density", 8.0, "bar", at=13.7),
            ControlRecord(20.0, "tempo", "bpm", 140.0),
            ControlRecord(24.0, "preset", "preset", "piano", "bar"),
            ControlRecord(30.25, "transport", "stop")]
    path = tmp_path / "perf.jsonl"
    with ControlLogWriter(path, header) as w:
        for r in recs:
            w.write(r)
    lines = path.read_text().splitlines()
    first = json.loads(lines[0])
    assert first["type"] == "session" and first["version"] == 1 and first["meter"] == [4, 4]
    assert first["sample_rate"] == 44100 and first["preset"] == "techno"
    h2, r2 = read_control_log(path)
    assert h2 == header and r2 == recs
    assert first["snap_ms"] == 25.0  # the beat snap the performance was played with, replayed the same


def test_a_log_from_before_the_beat_snap_replays_without_it():
    header, _ = parse_lines(io.StringIO('{"type":"session","version":1,"preset":"a","seed":1,"bpm":120}\n'))
    assert header.snap_ms == 0.0


@pytest.mark.parametrize(("text", "match"), [
    ("", "empty"),
    ('{"type":"control"}\n', "session header"),
    ('{"type":"session","version":2,"preset":"a","seed":1,"bpm":120}\n', "version 2"),
    ('{"type":"session","version":1,"preset":"a","seed":1,"bpm":120}\nnot json\n', "line 2: not JSON"),
    ('{"type":"session","version":1,"preset":"a","seed":1,"bpm":120,"snap_ms":90}\n', "snap_ms 90 is outside 0..50"),
    ('{"type":"session","version":1,"preset":"a","seed":1,"bpm":120}\n{"beat":1,"type":"x","name":"y"}\n',
     "record type 'x'"),
    ('{"type":"session","version":1,"preset":"a","seed":1,"bpm":120}\n{"beat":1,"type":"control"}\n',
     "missing field"),
])
def test_bad_logs_name_the_problem(text, match):
    with pytest.raises(ControlLogError, match=match):
        parse_lines(io.StringIO(text))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ControlLogError, match="cannot read"):
        read_control_log(tmp_path / "nope.jsonl")
