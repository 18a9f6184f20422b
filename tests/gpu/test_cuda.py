"""The cuda-python layer against a real GPU: devices, copies, events, graphs, errors."""

from __future__ import annotations

import numpy as np
import pytest

from trtforge.backends import cuda


def test_device_facts_name_the_gpu() -> None:
    assert cuda.device_count() >= 1
    facts = cuda.device_facts(0)
    assert facts["kind"] == "cuda"
    assert facts["name"] == cuda.device_name(0) != ""
    major, minor = cuda.compute_capability(0)
    assert major >= 5 and facts["compute_capability"] == f"{major}.{minor}"
    assert int(str(facts["driver_cuda"]).split(".")[0]) >= 11


def test_pinned_device_round_trip_keeps_every_byte() -> None:
    stream = cuda.Stream()
    src = cuda.PinnedArray((4, 257), np.float16)
    src.array[...] = np.random.default_rng(1).standard_normal((4, 257)).astype(np.float16)
    dst = cuda.PinnedArray((4, 257), np.float16)
    dst.array[...] = 0
    dev = cuda.DeviceBuffer(src.nbytes)
    cuda.memcpy_htod_async(dev, src, stream)
    cuda.memcpy_dtoh_async(dst, dev, stream)
    stream.synchronize()
    np.testing.assert_array_equal(dst.array, src.array)
    assert isinstance(stream.handle, int) and stream.handle != 0
    dev.free()
    dev.free()  # freeing twice is harmless


def test_events_time_work_on_the_stream() -> None:
    stream = cuda.Stream()
    host = cuda.PinnedArray((64, 1024, 1024), np.uint8)  # 64 MiB: a copy that takes measurable time
    dev = cuda.DeviceBuffer(host.nbytes)
    start, end = cuda.Event(), cuda.Event()
    start.record(stream)
    cuda.memcpy_htod_async(dev, host, stream)
    end.record(stream)
    end.synchronize()
    assert end.query() is True
    ms = start.elapsed_ms(end)
    assert 0.0 < ms < 1000.0


def test_graph_replays_the_captured_copies_with_new_data() -> None:
    stream = cuda.Stream()
    src, dst = cuda.PinnedArray((1000,), np.float32), cuda.PinnedArray((1000,), np.float32)
    dev = cuda.DeviceBuffer(src.nbytes)

    def enqueue() -> None:
        cuda.memcpy_htod_async(dev, src, stream)
        cuda.memcpy_dtoh_async(dst, dev, stream)

    graph = cuda.Graph.capture(stream, enqueue)
    for value in (1.5, -7.0):
        src.array[...] = value
        graph.launch(stream)
        stream.synchronize()
        assert np.all(dst.array == value)
    graph.close()


def test_a_failed_call_names_the_cuda_error() -> None:
    with pytest.raises(cuda.CudaError, match="cudaErrorInvalidDevice"):
        cuda.set_device(cuda.device_count() + 7)
    cuda.set_device(0)


def test_tensor_buffers_reuse_until_a_shape_changes_and_round_trip() -> None:
    stream = cuda.Stream()
    buffers = cuda.TensorBuffers()
    host, device = buffers.get("x", (2, 8), np.float32)
    assert buffers.get("x", (2, 8), np.float32) == (host, device)  # same shape: the same buffers
    smaller_host, smaller_device = buffers.get("x", (1, 8), np.float32)
    assert smaller_host is not host and smaller_device is device  # the device buffer is big enough
    x = np.arange(24, dtype=np.float32).reshape(3, 8)
    ptr = buffers.upload("x", x, stream)
    assert buffers.device["x"].ptr == ptr and buffers.device["x"].nbytes == x.nbytes  # grown
    out = cuda.PinnedArray((3, 8), np.float32)
    cuda.memcpy_dtoh_async(out, buffers.device["x"], stream)
    stream.synchronize()
    np.testing.assert_array_equal(out.array, x)
    buffers.free()
    assert buffers.host == {} and buffers.device == {}
