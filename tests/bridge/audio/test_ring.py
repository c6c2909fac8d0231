"""AudioRing: chunked writes/reads of awkward sizes reproduce the stream; underruns, overflow and flush."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from bridge.audio.ring import AudioRing, AudioRingError

SIZES = [1, 63, 64, 65, 8193]


def signal(frames: int) -> np.ndarray:
    rng = np.random.default_rng(frames)
    return rng.standard_normal((2, frames)).astype(np.float32)


@pytest.mark.parametrize("write_size", SIZES)
@pytest.mark.parametrize("read_size", SIZES)
def test_chunked_stream_matches_one_pass(write_size, read_size):
    total = 20000
    src = signal(total)
    ring = AudioRing(10000)  # smaller than the stream, so the indices wrap several times
    got = np.zeros((total, 2), dtype=np.float32)  # (frames, channels) like PortAudio's outdata
    w = r = 0
    while r < total:
        while w < total and ring.free_frames > 0:
            w += ring.write(src[:, w : w + min(write_size, ring.free_frames)])
        n = min(read_size, ring.depth_frames, total - r)
        assert ring.read_into(got[r : r + n]) == n
        r += n
    np.testing.assert_array_equal(got.T, src)
    assert ring.underruns == 0 and ring.overflow_frames == 0
    assert ring.frames_played == ring.frames_read == ring.frames_written == total


def test_layouts_channels_first_and_per_channel_buffers():
    src = signal(100)
    ring = AudioRing(256)
    ring.write(src)
    a = np.empty((2, 30), dtype=np.float32)
    assert ring.read_into(a, channels_first=True) == 30
    left, right = np.empty(30, np.float32), np.empty(30, np.float32)
    assert ring.read_into((left, right)) == 30
    b = np.empty((40, 2), dtype=np.float32)
    assert ring.read_into(b) == 40
    np.testing.assert_array_equal(np.concatenate([a, np.stack([left, right]), b.T], axis=1), src)


def test_underrun_fills_silence_counts_and_recovers():
    ring = AudioRing(1024)
    out = np.full((64, 2), 9.0, dtype=np.float32)
    assert ring.read_into(out) == 0 and ring.underruns == 0, "never fed: not an underrun"
    assert not out.any() and ring.frames_played == 64
    src = signal(100)
    ring.write(src)
    assert ring.read_into(out) == 64
    assert ring.read_into(out) == 36  # short: 36 frames of audio, 28 of silence
    np.testing.assert_array_equal(out[:36].T, src[:, 64:])
    assert not out[36:].any()
    assert (ring.underruns, ring.underrun_frames) == (1, 28)
    assert ring.read_into(out) == 0 and (ring.underruns, ring.underrun_frames) == (2, 92)
    ring.write(src[:, :64])  # the renderer catches up: playback resumes
    assert ring.read_into(out) == 64 and ring.underruns == 2
    np.testing.assert_array_equal(out.T, src[:, :64])
    assert ring.frames_played == 5 * 64 and ring.frames_read == 164
    ring.disarm()  # transport stopped on purpose
    ring.read_into(out)
    assert ring.underruns == 2


def test_overflow_refuses_the_tail_and_flush_drops_queued_audio():
    ring = AudioRing(100)
    assert ring.write(signal(150)) == 100 and ring.overflow_frames == 50
    assert ring.free_frames == 0
    assert ring.flush() == 100 and ring.depth_frames == 0
    fresh = signal(10)
    ring.write(fresh[:, :0])  # empty writes are harmless
    out = np.empty((2, 10), dtype=np.float32)
    assert ring.read_into(out, channels_first=True) == 0  # the flushed audio is never played
    assert ring.flushed_frames == 100
    ring.write(fresh)
    assert ring.read_into(out, channels_first=True) == 10
    np.testing.assert_array_equal(out, fresh)


def test_offline_read_leaves_the_rest_untouched():
    ring = AudioRing(64)
    ring.write(signal(10))
    out = np.full((2, 32), 7.0, dtype=np.float32)
    assert ring.read_into(out, channels_first=True, fill_silence=False) == 10
    assert (out[:, 10:] == 7.0).all() and ring.underruns == 0 and ring.frames_played == 10


def test_bad_shapes_are_refused():
    with pytest.raises(AudioRingError, match=r"expected \(2, frames\)"):
        AudioRing(64).write(np.zeros((64, 2)))
    with pytest.raises(AudioRingError, match="capacity_frames=0"):
        AudioRing(0)


def test_threaded_producer_and_consumer_keep_every_sample():
    total, src = 50_000, signal(50_000)
    ring = AudioRing(4096)
    got = np.zeros((2, total), dtype=np.float32)

    def produce() -> None:
        w = 0
        while w < total:
            w += ring.write(src[:, w : w + min(777, ring.free_frames)])

    thread = threading.Thread(target=produce)
    thread.start()
    r = 0
    while r < total:
        r += ring.read_into(got[:, r : r + min(511, total - r)], channels_first=True, fill_silence=False)
    thread.join()
    np.testing.assert_array_equal(got, src)


def test_retract_takes_back_the_newest_frames_but_never_what_a_read_may_be_taking() -> None:
    ring = AudioRing(4096)
    ring.write(np.arange(3000, dtype=np.float32)[None].repeat(2, 0))
    out = np.zeros((2, 512), np.float32)
    ring.read_into(out, channels_first=True)  # the reader takes blocks of 512
    assert not ring.retract(3000 - 512 - 400)  # would leave 400 queued: less than a read, refused
    assert ring.depth_frames == 2488 and ring.frames_written == 3000
    assert ring.retract(1000) and ring.depth_frames == 1488 and ring.frames_written == 2000
    ring.write(np.full((2, 100), -1.0, np.float32))
    rest = np.zeros((2, 1588), np.float32)
    assert ring.read_into(rest, channels_first=True) == 1588 and ring.underruns == 0
    assert rest[0, 1487] == 1999.0 and (rest[0, 1488:] == -1.0).all() and ring.retracted_frames == 1000
