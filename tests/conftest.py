"""Shared fixtures: a real JACK server (dummy driver), started and stopped by PID."""

from __future__ import annotations

import pytest

from tests.jack_server import JackServer, jackd_available, running_jack


@pytest.fixture
def jack_server() -> JackServer:
    """A fresh `jackd -d dummy -r 44100 -p 512`; JACK_DEFAULT_SERVER points at it for the test."""
    if not jackd_available():
        pytest.skip("jackd is not installed (apt install jackd2); make test installs it when run as root")
    with running_jack() as server:
        yield server
