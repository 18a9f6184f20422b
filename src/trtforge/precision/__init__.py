"""Precision stage: calibration data, ranges, Q/DQ placement and casts, done once in the
ONNX graph so that every backend consumes the same transformed model."""
