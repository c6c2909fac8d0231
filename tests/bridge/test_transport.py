"""Transport model and MidiClockTracker on synthesised clock + Start/Continue/Stop/SPP streams."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from bridge.errors import ConfigError
from bridge.events import PositionEvent, TempoEvent, TransportEvent
from bridge.jack_midi import FrameClock
from bridge.transport import DeviceClockTransport, MidiClockTracker, Transport
from tests.bridge.clockstreams import double, drop, jack_quantised, late_port, scattered, tick_times


def test_transport_beats_bars_offset_and_tempo_change() -> None:
    tr = Transport(bpm=120.0, numerator=3, denominator=4)
    assert tr.beat_at(5.0) == 0.0  # stopped
    tr.play(10.0)
    assert tr.beat_at(11.0) == pytest.approx(2.0)
    pos = tr.bar_at(12.0)  # beat 4 in 3/4: bar 1, beat 1
    assert (pos.bar, pos.beat, pos.bar_beats) == (1, pytest.approx(1.0), 3.0)
    tr.set_tempo(60.0, 11.0)  # at beat 2
    assert tr.beat_at(13.0) == pytest.approx(4.0)
    assert tr.time_at_beat(4.0) == pytest.approx(13.0)
    tr.sync_offset_ms = 250.0  # run 250 ms ahead
    assert tr.beat_at(13.0) == pytest.approx(4.25)
    assert tr.time_at_beat(4.25) == pytest.approx(13.0)
    tr.stop(13.0)  # where the host stopped: beat 4 (the offset only applies while playing)
    assert tr.beat_at(20.0) == pytest.approx(4.0)
    tr.sync_offset_ms = 0.0
    tr.locate(8.0, 20.0)
    tr.continue_(21.0)
    assert tr.beat_at(22.0) == pytest.approx(9.0)
    tr.set_meter(6, 8)
    assert tr.bar_beats == 3.0


@pytest.mark.parametrize("num,den,match", [(0, 4, "numerator: 0 is out of range 1-32"), (4, 3, "denominator")])
def test_bad_meter_is_named(num: int, den: int, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Transport(numerator=num, denominator=den)


def test_bad_tempo_is_named() -> None:
    with pytest.raises(ConfigError, match="tempo: 0.0 BPM is out of range 1-999"):
        Transport(bpm=0.0)


def _tracker() -> tuple[MidiClockTracker, list]:
    events: list = []
    return MidiClockTracker(events.append), events


def test_start_clock_stop_spp_continue() -> None:
    tr, events = _tracker()
    times = tick_times([125.0] * 400, jitter_s=0.001, seed=2)
    for t in times[:48]:  # clock while stopped: tempo only
        tr.clock(t)
    assert not any(isinstance(e, (TransportEvent, PositionEvent)) for e in events)
    tr.start(times[48] - 0.005)
    for t in times[48:48 + 193]:  # the first clock is beat 0, then 192 more clocks = 8 beats
        tr.clock(t)
    play = [e for e in events if isinstance(e, TransportEvent)]
    assert play[0].action == "play" and play[0].beat == 0.0
    assert play[0].time == pytest.approx(times[48], abs=0.002)
    assert tr.beat == 8.0
    beats = [e.beat for e in events if isinstance(e, PositionEvent)]
    assert beats == [float(b) for b in range(9)]
    tempo = [e for e in events if isinstance(e, TempoEvent)]
    assert tempo[-1].bpm == pytest.approx(125.0, abs=0.1) and tempo[-1].confidence > 0.9
    assert tr.transport.beat_at(times[48 + 192]) == pytest.approx(8.0, abs=0.01)

    tr.stop(times[241])
    assert events[-1] == TransportEvent("stop", "midi", times[241], 8.0)
    tr.song_position(64, times[242])  # 64 sixteenths = beat 16 = bar 5 of 4/4
    assert events[-1] == TransportEvent("locate", "midi", times[242], 16.0)
    for t in times[243:250]:  # clocks while stopped do not move the position
        tr.clock(t)
    assert tr.beat == 16.0
    tr.continue_(times[250] - 0.001)
    for t in times[250:250 + 25]:
        tr.clock(t)
    cont = [e for e in events if isinstance(e, TransportEvent)][-1]
    assert (cont.action, cont.beat) == ("continue", 16.0)
    assert tr.beat == 17.0
    assert tr.transport.bar_at(times[274]).bar == 4  # 0-based bar 4 = the fifth bar


def _played_and_stopped(period: float, delay: Callable[[], float] = lambda: 0.0) -> tuple[MidiClockTracker, list,
                                                                                         float]:
    """A tracker that played 170 clocks from t = 100 s and stopped 0.4 clocks past the last, with SPP 44 at Stop;
    every message arrives ``delay()`` late."""
    tr, events = _tracker()
    tr.start(100.0 - 0.01)
    for k in range(170):
        tr.clock(100.0 + k * period + delay())
    stop = 100.0 + 169.4 * period
    d = delay()
    tr.stop(stop + d)
    tr.song_position(44, stop + d)
    return tr, events, stop


def _roll_on_from_stop(preroll: bool) -> tuple[list, list[float], float]:
    """A sender stopped 0.4 clocks past clock 169 for 2 s, with SPP at Stop and when it rolls again; with `preroll`
    (as jack_midi_clock does) it clocks on from the stop position and sends Continue when it passes its SPP (16th 45
    = clock 270), at clock 272.4. Returns the events, the host times of the clocks after Continue and the time the
    sender was at clock 0 of its grid (clock x at that time + x periods, the stop not counted)."""
    period = 60.0 / 126.0 / 24
    tr, events, stop = _played_and_stopped(period)
    resume = stop + 2.0  # from here the grid runs 2 s later
    tr.song_position(45, resume)
    first = 270 if not preroll else 170
    after = []
    for k in range(first, 400):
        t = resume + (k + (0.4 if preroll else 0.0) - 169.4) * period
        if k == (272 if preroll else first):
            tr.continue_(t - 1e-4)
        tr.clock(t)
        if k >= 272:
            after.append(t)
    return events, after, 102.0


def test_a_sender_that_rolls_on_from_where_it_stopped_is_followed_on_its_grid() -> None:
    """jack_midi_clock's Continue lands up to a 16th past its SPP, between clocks: counted from the SPP, every beat
    after it was 2.4 clocks (48 ms at 126 BPM) late. Its clocks counted from where Stop left off keep the grid."""
    events, after, grid0 = _roll_on_from_stop(preroll=True)
    period = 60.0 / 126.0 / 24
    beats = [e for e in events if isinstance(e, PositionEvent) and e.time >= after[0]]
    assert len(beats) >= 4
    assert all(e.time == pytest.approx(grid0 + e.beat * 24 * period, abs=1e-3) for e in beats)
    cont = [e for e in events if isinstance(e, TransportEvent)][-1]
    assert cont.action == "continue" and cont.beat * 24 == pytest.approx(272.4)


def test_a_sender_that_continues_at_its_spp_is_followed_from_the_spp() -> None:
    events, after, _ = _roll_on_from_stop(preroll=False)
    cont = [e for e in events if isinstance(e, TransportEvent)][-1]
    assert cont.action == "continue" and cont.beat == 270 / 24
    beats = [e for e in events if isinstance(e, PositionEvent) and e.time >= after[0]]
    assert beats and all(e.beat == int(e.beat) for e in beats)


def _locate_and_roll(target_clock: int, spp_after: int, late: int, scatter_s: float = 0.0) -> tuple[list, float, float]:
    """jack_midi_clock stopped at clock 169.4, located to ``target_clock`` and rolling again 0.5 s later (as
    recorded from it with jack_transport as the master): SPP at Stop, at the locate and as it rolls (``spp_after``:
    its SPP in 16ths, 2 s ahead), clocks from the located place (the first a period after that SPP), Continue with the
    clock ``late`` clocks past the SPP; ``scatter_s``: every message delayed 0 to that much on its way (a MIDI
    interface's jitter, from the start). Returns the events, the time the sender's grid was at ``target_clock`` and
    the clock's period."""
    period = 60.0 / 126.0 / 24
    rng = np.random.default_rng(3)

    def delay() -> float:
        return float(rng.uniform(0.0, scatter_s))

    tr, events, stop = _played_and_stopped(period, delay)
    tr.song_position(spp_after, stop + 0.3 + delay())
    resume = stop + 0.5
    tr.song_position(spp_after, resume + scatter_s)  # (the worst case: the SPP delayed most, its next clock least)
    for k in range(1, 400):
        t, d = resume + k * period, delay() if k > 1 else 0.0
        if target_clock + k == spp_after * 6 + late:
            tr.continue_(t + d)
            d = max(d, delay())  # (a wire keeps the order: the clock after its Continue)
        tr.clock(t + d)
    return events, resume, period


@pytest.mark.parametrize("target_clock,spp_after,late", [(1536, 273, 3), (1542, 274, 1), (96, 20, 5)])
def test_a_sender_that_rolls_on_from_a_locate_is_followed_on_its_grid(target_clock: int, spp_after: int,
                                                                      late: int) -> None:
    """jack_midi_clock's Continue after a locate comes with a clock past its SPP (the third with jack_transport):
    taken as the SPP, every beat after it was that many clocks (20 ms each at 126 BPM) late. Counted from the SPP it
    sent as it rolled, they keep the grid."""
    events, resume, period = _locate_and_roll(target_clock, spp_after, late)
    cont = [e for e in events if isinstance(e, TransportEvent)][-1]
    assert cont.action == "continue" and cont.beat * 24 == spp_after * 6 + late
    beats = [e for e in events if isinstance(e, PositionEvent) and e.time > cont.time]
    assert len(beats) >= 4
    assert all(e.time == pytest.approx(resume + (e.beat * 24 - target_clock) * period, abs=1e-3) for e in beats)


def test_an_spp_before_the_first_play_and_clocks_after_it_are_taken_as_they_come() -> None:
    tr, events = _tracker()
    tr.song_position(32, 10.0)
    for k in range(1, 50):
        tr.clock(10.0 + k * 0.02)
    tr.continue_(11.0)
    tr.clock(11.0)
    assert [e.action for e in events if isinstance(e, TransportEvent)] == ["locate", "continue"]
    assert tr.beat == 8.0


def test_a_locate_through_a_jittery_interface_is_followed_on_its_grid() -> None:
    """The same through a MIDI interface that delays each message by 0-4 ms: the first clock after the SPP lands
    0.8-1.2 periods after it, which a tenth of a period's tolerance refused (a ten-minute run: every beat after the
    locate a clock late). The tolerance follows the clock's measured jitter."""
    events, resume, period = _locate_and_roll(1536, 273, 3, scatter_s=0.004)
    cont = [e for e in events if isinstance(e, TransportEvent)][-1]
    assert cont.action == "continue" and cont.beat * 24 == 273 * 6 + 3
    beats = [e for e in events if isinstance(e, PositionEvent) and e.time > cont.time]
    assert len(beats) >= 4
    assert all(e.time == pytest.approx(resume + (e.beat * 24 - 1536) * period, abs=4e-3) for e in beats)


def test_a_continue_right_after_its_spp_is_the_spps_position() -> None:
    """A sender that locates while playing with Stop, SPP, Continue and its next clock a period later: no clocks came
    before the Continue, so nothing says the sender rolled on; the clock after Continue is the SPP."""
    period = 60.0 / 126.0 / 24
    tr, events = _tracker()
    tr.start(99.99)
    for k in range(100):
        tr.clock(100.0 + k * period)
    t = 100.0 + 99.5 * period
    tr.stop(t)
    tr.song_position(64, t)
    tr.continue_(t)
    for k in range(1, 30):
        tr.clock(t + k * period)
    cont = [e for e in events if isinstance(e, TransportEvent)][-1]
    assert (cont.action, cont.beat) == ("continue", 16.0)


def test_spp_while_playing_relocates_on_next_clock() -> None:
    tr, events = _tracker()
    times = tick_times([120.0] * 100)
    tr.start(times[0])
    for t in times[:50]:
        tr.clock(t)
    tr.song_position(16, times[50] - 0.001)  # beat 4
    tr.clock(times[50])
    assert tr.beat == 4.0
    tr.clock(times[51])
    assert tr.beat == pytest.approx(4 + 1 / 24)


def test_position_survives_dropped_and_doubled_ticks() -> None:
    for times in (drop(tick_times([120.0] * 289, jitter_s=0.001), every=23),
                  double(tick_times([120.0] * 289, jitter_s=0.001), every=23)):
        tr, events = _tracker()
        tr.start(times[0] - 0.01)
        for t in times:
            tr.clock(t)
        assert tr.beat == 12.0


def test_a_burst_of_ticks_from_a_late_port_is_recounted_from_the_clocks_time() -> None:
    """A busy daemon's port gets ticks twice, late, or not at all for a second (the pattern recorded with
    scripts/jack_tick_probe.py); counting them one by one ends beats away from the sender. Once the clock is steady
    again the count is set from the time since the last steady tick, so the beats are the sender's again."""
    true = tick_times([126.0] * (24 * 40))
    tr, events = _tracker()
    tr.start(true[0] - 0.01)
    for t in late_port(true, start=24 * 12, ticks=60):
        tr.clock(t)
    assert tr.beat == pytest.approx(40.0 - 1 / 24)  # the last tick is beat 39 23/24, as the sender sent it
    assert tr.recounts >= 1
    late = [e for e in events if isinstance(e, PositionEvent) and e.time > true[24 * 16]]
    assert late and all(e.time == pytest.approx(true[round(e.beat * 24)], abs=0.002) for e in late)


@pytest.mark.parametrize("seed", range(4))
def test_a_late_port_burst_leaves_the_tempo_where_it_was(seed: int) -> None:
    """A short burst of a late port (JACK MIDI through rtmidi, the JACK server missing deadlines: ticks given twice,
    others dropped, one stamped periods late) is not a tempo change. Read as a doubling, or its late stamp as a pause
    that restarted the fit, it set 140 BPM to 84-155 for a beat or more (in the end-to-end test too), and the model
    was re-conditioned on it. What the step logic makes of the ticks it miscounts stays within 5 %."""
    for at in (24 * 10 + 6, 24 * 10 + 12, 24 * 10 + 30, 24 * 20 + 3):
        true = jack_quantised(tick_times([140.0] * (24 * 26), seed=seed), seed=seed)
        tr, events = _tracker()
        tr.start(true[0] - 0.01)
        for t in late_port(true, start=at, ticks=12, seed=seed):
            tr.clock(t)
        after = [e.bpm for e in events if isinstance(e, TempoEvent) and e.time > true[at] - 0.01]
        assert all(abs(b - 140.0) <= 7.0 for b in after), (at, after)
        assert tr.transport.bpm == pytest.approx(140.0, abs=1.0)


@pytest.mark.parametrize(("scatter", "ticks"), [(0.008, 60), (0.004, 150)])
def test_a_late_port_burst_through_a_scattering_interface_is_never_recounted_a_clock_off(scatter: float,
                                                                                        ticks: int) -> None:
    """The same burst through an interface that delays each tick 0-8 ms: the count is set from the ticks' fitted
    times, and where those leave it in doubt it is left alone. A count set a clock off is every beat a clock early
    until the next locate (heard as 18 ms in a ten-minute run: one recount in three of them was)."""
    for seed in range(12):
        true = tick_times([126.0] * (24 * 40))
        tr, _ = _tracker()
        tr.start(true[0] - 0.01)
        for t in late_port(scattered(true, scatter, seed), start=24 * 12, ticks=ticks, seed=seed):
            tr.clock(t)
        if tr.recounts or ticks == 60:
            assert tr.beat == pytest.approx(40.0 - 1 / 24), seed


def test_tempo_events_have_hysteresis() -> None:
    tr, events = _tracker()
    for t in tick_times([120.0] * 600, jitter_s=0.001, seed=4):
        tr.clock(t)
    tempos = [e.bpm for e in events if isinstance(e, TempoEvent)]
    assert 1 <= len(tempos) <= 12  # not one per tick
    assert tempos[-1] == pytest.approx(120.0, abs=0.1)


def test_handle_dispatch_and_bad_spp() -> None:
    tr, events = _tracker()
    assert tr.handle("songpos", 1.0, pos=8)
    assert events[-1].beat == 2.0
    assert not tr.handle("note_on", 1.0)
    with pytest.raises(ValueError, match="16384 is out of range 0-16383"):
        tr.song_position(16384, 1.0)


# ------------------------------------------------------------------------------------ the device's clock
class _Period:
    """What FrameClock reads of a JACK client in its process callback."""

    def __init__(self) -> None:
        self.last_frame_time, self.frames_since_cycle_start = 0, 0


def test_frame_clock_anchor_follows_a_slow_device_and_ignores_skipped_periods_and_late_callbacks() -> None:
    host = [50.0]
    clock, client = FrameClock(48000, clock=lambda: host[0], window=16), _Period()
    for k in range(400):  # the device's clock runs 1 % slow: 512 frames take 1.01 * 512 / 48000 s
        skipped = 1 if k >= 200 else 0  # a period no client saw (an xrun): its frames and its time both pass
        client.last_frame_time = 512 * (k + skipped)
        host[0] = 50.0 + 1.01 * 512 * (k + skipped) / 48000 + (0.004 if k == 300 else 0.0)  # one callback 4 ms late
        clock.cycle(client)
    # anchor = host time of frame 0: it grows by the 1 % the device lost (the median of the last 16 periods,
    # the skipped one counted)
    assert clock.anchor - 50.0 == pytest.approx(0.01 * 512 * 393 / 48000, abs=2e-5)


def test_frame_clock_follows_a_server_that_lost_time_within_a_few_periods() -> None:
    """A JACK server frozen for 40 ms (a dummy server under load) goes on from where it stopped: its frames are
    20 ms behind the host clock from then on. The anchor moves within JUMP_PERIODS (not half a window later), so the
    MIDI port, the transport follower and the audio sink agree again at once; a lone late callback moves nothing."""
    host = [50.0]
    clock, client = FrameClock(48000, clock=lambda: host[0]), _Period()
    moved_at = None
    for k in range(300):
        client.last_frame_time = 512 * k
        host[0] = 50.0 + 512 * k / 48000 + (0.020 if k >= 150 else 0.0) + (0.004 if k == 100 else 0.0)
        clock.cycle(client)
        if k == 101:
            assert clock.anchor == pytest.approx(50.0, abs=1e-9)
        if moved_at is None and clock.anchor > 50.01:
            moved_at = k
    assert moved_at == 150 + FrameClock.JUMP_PERIODS - 1 and clock.jumps == 1
    assert clock.anchor == pytest.approx(50.02, abs=1e-9)


def test_a_server_that_lost_time_costs_the_clock_no_tick() -> None:
    """The port's stamps step 20 ms late where its frame clock moves (a server that lost time): read in the
    sender's time (stamps less the port's drift), the clock keeps its count and its tempo, and the beats it states
    move with the server's frames."""
    period = 60.0 / 126.0 / 24
    drift = [0.0]
    tr, events = _tracker()
    tr.drift = lambda: drift[0]
    tr.start(99.99)
    for k in range(24 * 12 + 1):
        if k == 24 * 6 + 7:
            drift[0] = 0.020
        tr.clock(100.0 + k * period + drift[0])
    assert tr.ticks == 24 * 12 and tr.recounts == 0
    beats = [e for e in events if isinstance(e, PositionEvent)]
    assert all(e.time == pytest.approx(100.0 + e.beat * 24 * period + (0.02 if e.beat > 6 else 0.0), abs=2e-4)
               for e in beats)
    assert [e.bpm for e in events if isinstance(e, TempoEvent)][-1] == pytest.approx(126.0, abs=0.05)


def test_the_internal_clock_counts_device_time() -> None:
    drift = [0.0]
    tr = DeviceClockTransport(lambda: drift[0], bpm=120.0)
    tr.play(10.0)
    drift[0] = 0.05  # the device has played 50 ms less than the host clock says passed
    assert tr.beat_at(12.05) == pytest.approx(4.0)
    assert tr.time_at_beat(4.0) == pytest.approx(12.05)
    tr.set_tempo(60.0, 12.05)
    assert tr.beat_at(13.05) == pytest.approx(5.0)
