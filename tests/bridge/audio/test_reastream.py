"""ReaStream: packet layout checked byte by byte, and a real UDP stream to a receiver on 127.0.0.1."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from bridge.audio.reastream import (
    ReaStreamError,
    ReaStreamReceiver,
    ReaStreamSink,
    decode_packet,
    encode_packets,
)
from tests.bridge.audio.recorder import SR, stereo_sine


def check_layout(packet: bytes, identifier: bytes, channels: int, rate: int) -> np.ndarray:
    """Parse by hand (independently of decode_packet); return (channels, frames)."""
    assert packet[:4] == b"MRSR"
    (size,) = struct.unpack("<i", packet[4:8])
    assert size == len(packet)
    ident = packet[8:40]
    assert ident[31] == 0 and ident.rstrip(b"\0") == identifier
    assert packet[40] == channels
    assert struct.unpack("<i", packet[41:45])[0] == rate
    (nbytes,) = struct.unpack("<h", packet[45:47])
    assert nbytes == len(packet) - 47 and 0 < nbytes <= 1200 and nbytes % (4 * channels) == 0
    return np.frombuffer(packet[47:], dtype="<f4").reshape(channels, -1)


@pytest.mark.parametrize("frames", [1, 63, 64, 65, 150, 151, 8193])
def test_encode_splits_into_noninterleaved_packets(frames):
    block = stereo_sine(frames, start=7)
    packets = encode_packets(block, "musika", 44100)
    assert len(packets) == -(-frames // 150)
    parts = [check_layout(p, b"musika", 2, 44100) for p in packets]
    assert all(p.shape[1] == 150 for p in parts[:-1])
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), block)
    assert decode_packet(packets[0]).identifier == "musika"


def test_mono_and_eight_channels_use_the_1200_byte_limit():
    assert check_layout(encode_packets(np.ones((1, 1000)), "m", 48000)[0], b"m", 1, 48000).shape == (1, 300)
    assert check_layout(encode_packets(np.ones((8, 1000)), "m", 48000)[0], b"m", 8, 48000).shape == (8, 37)


def test_bad_identifier_and_bad_packets_are_refused():
    with pytest.raises(ReaStreamError, match="1-31 ASCII"):
        encode_packets(np.zeros((2, 4)), "x" * 32, 44100)
    good = encode_packets(np.zeros((2, 4)), "musika", 44100)[0]
    with pytest.raises(ReaStreamError, match="magic"):
        decode_packet(b"mRSR" + good[4:])
    with pytest.raises(ReaStreamError, match="sizes disagree"):
        decode_packet(good[:-4])
    with pytest.raises(ReaStreamError, match="shorter"):
        decode_packet(good[:20])


def test_sink_streams_continuous_audio_to_receiver():
    reference = stereo_sine(SR // 4, start=1000)
    with ReaStreamReceiver(identifier="musika-test") as receiver:
        sink = ReaStreamSink(port=receiver.port, identifier="musika-test", block_size=256)
        sink.ring.write(reference)
        with sink:
            assert receiver.wait_frames(reference.shape[1] + 1024), "receiver did not get the audio"
        stats = sink.stats()
        assert receiver.wait_frames(stats["frames_played"]), "packets were lost on loopback"
        raw = list(receiver.raw)
        audio = receiver.audio()
    assert not receiver.errors
    for packet in raw:
        check_layout(packet, b"musika-test", 2, 44100)
    # the ring was fed ahead: the stream starts with the reference, sample for sample, then silence
    np.testing.assert_array_equal(audio[:, : reference.shape[1]], reference)
    assert not audio[:, reference.shape[1] :].any()
    assert stats["packets_sent"] == len(raw) and stats["frames_played"] == audio.shape[1]
    assert stats["underruns"] >= 1  # the ring ran dry after the reference: counted, played as silence


def test_receiver_ignores_other_identifiers():
    with ReaStreamReceiver(identifier="wanted") as receiver:
        other = ReaStreamSink(port=receiver.port, identifier="other", block_size=128)
        wanted = ReaStreamSink(port=receiver.port, identifier="wanted", block_size=128)
        wanted.ring.write(np.full((2, 128), 0.5, dtype=np.float32))
        with other, wanted:
            assert receiver.wait_frames(512)
        assert {p.identifier for p in receiver.packets} == {"wanted"}
