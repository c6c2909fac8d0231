"""The model runtime: a preset's ONNX networks, its configuration and conditioning, decoding with its phase, and the
output stage every block passes through."""
