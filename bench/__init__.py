"""Benchmarks and the soak test: speed, memory and live stability measured through the real engine and sinks
(`musika bench`). Imports generator, bridge and, for training-speed figures, training; none of those imports it."""
