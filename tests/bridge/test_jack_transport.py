"""The JACK transport as a sync source: each period's state and position -> play/stop/locate, tempo, meter and
exact positions, with the beat where the host's frames put it (bridge.jack_transport)."""

from __future__ import annotations

import math

import pytest

from bridge.events import MeterEvent, PositionEvent, TempoEvent, TransportEvent
from bridge.jack_transport import Bbt, TransportFollower, bbt_of

SR, N = 44100, 512


class Master:
    """A timebase master as jack_transport is one: BBT recomputed from the frame at a new position or tempo, and
    otherwise advanced by whole ticks each period (its int tick: the BBT runs 1.7 % slow at 126 BPM)."""

    def __init__(self, bpm: float = 126.0, beats_per_bar: float = 4.0, beat_type: float = 4.0, bbt: bool = True):
        self.frame, self.bpm, self.bpb, self.beat_type, self.bbt = 0, bpm, beats_per_bar, beat_type, bbt
        self.rolling, self._tick_total, self._reset = False, 0, True

    def position(self) -> dict:
        pos = {"frame": self.frame, "frame_rate": SR, "usecs": 0}
        if not self.bbt:
            return pos
        if self._reset:
            self._tick_total, self._reset = int(self.frame / SR / 60.0 * self.bpm * 1920), False
        beats, tick = divmod(self._tick_total, 1920)
        bar, beat = divmod(beats, int(self.bpb))
        pos.update(bar=bar + 1, beat=beat + 1, tick=tick, bar_start_tick=0.0, beats_per_bar=self.bpb,
                   beat_type=self.beat_type, ticks_per_beat=1920.0, beats_per_minute=self.bpm)
        return pos

    def advance(self) -> None:
        if self.rolling:
            self.frame += N
            self._tick_total += int(N * 1920 * self.bpm / (SR * 60))  # whole ticks, as jack_transport adds them

    def locate(self, frame: int) -> None:
        self.frame, self._reset = frame, True

    def set_tempo(self, bpm: float) -> None:
        self.bpm, self._reset = bpm, True


def run(follower: TransportFollower, master: Master, periods: int) -> list:
    events = []
    for _ in range(periods):
        t = master.frame / SR + 100.0  # host time of the period's first frame (a device on the host's clock)
        events += follower.period(master.rolling, master.position(), t, N)
        master.advance()
    return events


def kinds(events: list, cls: type) -> list:
    return [e for e in events if isinstance(e, cls)]


def test_the_host_starting_plays_from_its_beat_and_positions_follow_its_frames_not_a_drifting_bbt():
    f, m = TransportFollower(bpm=100.0), Master(126.0)
    before = run(f, m, 10)
    assert kinds(before, MeterEvent) == [MeterEvent(4, 4, "jack")]
    assert [e.bpm for e in kinds(before, TempoEvent)] == [126.0]
    assert not kinds(before, TransportEvent)  # stopped at frame 0: nothing to play yet
    m.rolling = True
    events = run(f, m, 60 * SR // N)  # a minute
    plays = kinds(events, TransportEvent)
    assert [(e.action, e.beat) for e in plays] == [("play", 0.0)]
    positions = kinds(events, PositionEvent)
    assert 230 <= len(positions) <= 245 and all(p.exact for p in positions)  # 4 a second
    for p in positions:  # exactly the frame's beat; the master's own BBT is 1.7 % behind by the end
        assert p.beat == pytest.approx((p.time - 100.0) * 126.0 / 60.0, abs=1e-9)
    assert bbt_of(m.position()).quarters < positions[-1].beat - 1.5  # its BBT: 1.7 beats behind


def test_a_locate_while_rolling_and_a_stop_and_continue_state_where_the_host_is():
    f, m = TransportFollower(), Master(126.0)
    m.rolling = True
    run(f, m, 100)
    m.locate(SR * 20)  # the playhead jumps to 20 s: beat 42
    events = run(f, m, 5)
    locate = kinds(events, TransportEvent)
    assert [(e.action, e.beat) for e in locate] == [("locate", pytest.approx(42.0))]
    assert locate[0].time == pytest.approx(20.0 + 100.0)
    m.rolling = False
    stop = kinds(run(f, m, 50), TransportEvent)
    assert [e.action for e in stop] == ["stop"] and stop[0].beat == pytest.approx((SR * 20 + 5 * N) / SR * 2.1)
    m.locate(SR * 10)  # moved while stopped
    moved = kinds(run(f, m, 3), TransportEvent)
    assert [(e.action, e.beat) for e in moved] == [("locate", pytest.approx(21.0))]
    m.rolling = True
    cont = kinds(run(f, m, 3), TransportEvent)
    assert [(e.action, e.beat) for e in cont] == [("continue", pytest.approx(21.0))]


def test_a_tempo_step_is_passed_at_once_and_the_beat_follows_the_master():
    f, m = TransportFollower(), Master(126.0)
    m.rolling = True
    run(f, m, 200)
    m.set_tempo(132.3)  # jack_transport re-derives its position from frame 0 at the new tempo
    events = run(f, m, 20)
    assert [e.bpm for e in kinds(events, TempoEvent)] == [132.3]
    p = kinds(events, PositionEvent)[0]
    assert p.beat == pytest.approx((p.time - 100.0) * 132.3 / 60.0, abs=1 / 1920)  # (the BBT's whole ticks)


def test_a_ramp_the_master_states_every_period_arrives_as_a_few_steps_ending_on_its_tempo():
    f, m = TransportFollower(), Master(120.0)
    m.rolling = True
    run(f, m, 100)
    events = []
    for k in range(1, 690):  # 8 s from 120 to 126 BPM, a new tempo every period
        m.bpm = 120.0 + 6.0 * k / 689  # (a master that keeps its position continuous: no reset)
        events += kinds(run(f, m, 1), TempoEvent)
    events += kinds(run(f, m, 200), TempoEvent)
    tempos = [e.bpm for e in events]
    assert 10 <= len(tempos) <= 25 and tempos[-1] == 126.0
    assert all(b - a >= 0.3 for a, b in zip(tempos[:-2], tempos[1:-1], strict=True))
    # each step says how fast the tempo moves (so the beats planned ahead follow the ramp); the last that it holds
    assert all(e.slope == pytest.approx(6.0 / 8.0, rel=0.01) for e in events[:-1]) and events[-1].slope == 0.0


def test_without_a_timebase_master_the_beat_counts_frames_at_the_configured_tempo():
    f, m = TransportFollower(bpm=90.0), Master(bbt=False)
    m.rolling = True
    events = run(f, m, 400)
    assert [e.bpm for e in kinds(events, TempoEvent)] == [90.0] and not kinds(events, MeterEvent)
    assert all(p.beat == pytest.approx((p.time - 100.0) * 1.5) for p in kinds(events, PositionEvent))


def test_compound_meters_count_quarter_notes():
    bbt = Bbt(bar=3, beat=4, tick=960, ticks_per_beat=1920.0, beats_per_bar=6.0, beat_type=8.0,
              beats_per_minute=180.0)
    assert bbt.quarters == pytest.approx((2 * 6 + 3.5) / 2) and bbt.quarter_bpm == 90.0 and bbt.meter == (6, 8)
    f, m = TransportFollower(), Master(180.0, 6.0, 8.0)
    events = run(f, m, 2)
    assert kinds(events, MeterEvent) == [MeterEvent(6, 8, "jack")] and kinds(events, TempoEvent)[0].bpm == 90.0


@pytest.mark.parametrize("bad", [{}, {"bar": 0, "beat": 1}, {"beats_per_minute": math.nan}, {"beat_type": 0.0}])
def test_a_missing_or_broken_bbt_is_not_used(bad):
    pos = {"frame": 0, "frame_rate": SR, "bar": 1, "beat": 1, "tick": 0, "ticks_per_beat": 1920.0,
           "beats_per_bar": 4.0, "beat_type": 4.0, "beats_per_minute": 120.0}
    pos = {k: v for k, v in {**pos, **bad}.items()} if bad else {"frame": 0, "frame_rate": SR}
    assert bbt_of(pos) is None
