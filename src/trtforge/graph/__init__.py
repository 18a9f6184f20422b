"""ONNX graph stage: loading, inspecting and reshaping models."""
