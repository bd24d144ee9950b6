"""The sandbox wire's raw frames: arrays cross the pipe as their bytes, checked on arrival."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

from course_pkg.sandbox import wire


@pytest.fixture
def pipe():
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    os.close(read_fd)
    os.close(write_fd)


def test_arrays_cross_as_raw_bytes_and_come_back_equal(pipe):
    read_fd, write_fd = pipe
    rng = np.random.default_rng(0)
    value = [{1: rng.normal(size=(3, 4)), 2: rng.integers(0, 9, size=5, dtype=np.int32)},
             (np.float32(2.5), np.array([True, False]), np.zeros((0, 3))),
             rng.normal(size=(4, 3)).T, 1.5, "loss", float("nan")]
    encoded = wire.encode(value, raw=True)
    wire.send(write_fd, {"value": encoded})
    got = wire.decode(wire.receive(read_fd, 2**20)["value"])
    assert np.array_equal(got[0][1], value[0][1]) and got[0][2].dtype == np.int32
    assert got[1][0].dtype == np.float32 and float(got[1][0][0]) == 2.5
    assert got[1][1].tolist() == [True, False] and got[1][2].shape == (0, 3)
    assert np.array_equal(got[2], value[2]), "a transposed (not contiguous) array"
    assert got[3:5] == [1.5, "loss"] and np.isnan(got[5]).all()
    got[0][1][0, 0] = 7.0  # each array has its own writable memory
    assert got[0][1][0, 0] == 7.0


def test_the_raw_frame_is_smaller_than_base64(pipe):
    read_fd, write_fd = pipe
    weights = np.ones((64, 48))  # within the pipe's buffer: nobody reads meanwhile
    wire.send(write_fd, {"w": wire.encode(weights, raw=True)})
    (first,) = struct.unpack(">Q", os.read(read_fd, 8))
    (raw,) = struct.unpack(">Q", os.read(read_fd, 8))
    assert first & wire.RAW and raw == weights.nbytes
    assert (first & ~wire.RAW) < 200, "the JSON holds no array data"


def hostile(write_fd: int, body: list, raw: bytes) -> None:
    text = json.dumps({"v": {"__array__": body}}).encode()
    os.write(write_fd, struct.pack(">QQ", len(text) | wire.RAW, len(raw)) + text + raw)


@pytest.mark.parametrize("body", [
    ["float64", [4], [0, 32], False],   # past the end of the raw data
    ["float64", [2], [-8, 16], False],  # before its start
    ["float64", [3], [0, 16], False],   # a size that does not match the shape
    ["float64", [-2], [0, 16], False],  # a negative shape
    ["object", [2], [0, 16], False],    # not a number dtype
    ["float64", [2], [0, "16"], False],
])
def test_a_hostile_array_reference_is_refused(pipe, body):
    read_fd, write_fd = pipe
    hostile(write_fd, body, b"x" * 16)
    with pytest.raises(wire.WireError):
        wire.decode(wire.receive(read_fd, 2**20)["v"])


def test_raw_data_counts_against_the_frame_limit(pipe):
    read_fd, write_fd = pipe
    hostile(write_fd, ["uint8", [64], [0, 64], False], b"x" * 64)
    with pytest.raises(wire.WireError, match="over the limit"):
        wire.receive(read_fd, 100)


def test_a_plain_frame_is_still_read(pipe):
    read_fd, write_fd = pipe
    text = json.dumps({"ok": True, "value": wire.encode(np.arange(3.0))}).encode()
    os.write(write_fd, struct.pack(">Q", len(text)) + text)
    assert wire.decode(wire.receive(read_fd, 2**20)["value"]).tolist() == [0.0, 1.0, 2.0]


def test_a_raw_frame_of_countless_objects_is_refused_before_parsing(pipe):
    read_fd, write_fd = pipe
    text = b'{"v": [' + b",".join([b"{}"] * (2 * wire.MAX_ITEMS + 1)) + b"]}"
    import threading

    writer = threading.Thread(target=os.write, args=(
        write_fd, struct.pack(">QQ", len(text) | wire.RAW, 8) + text + b"x" * 8))
    writer.start()
    with pytest.raises(wire.WireError, match="too many objects"):
        wire.receive(read_fd, 2**24)
    writer.join()


def test_a_forged_array_that_is_never_decoded_stays_plain_data(pipe):
    """A cell's reply is not decoded: an ``__array__`` forged into its outputs must still
    be JSON for the pages and the gradebook, and copy and pickle as a plain list."""
    import copy
    import pickle

    read_fd, write_fd = pipe
    hostile(write_fd, ["float64", [4], [8, 32], False], b"x" * 16)
    reply = wire.receive(read_fd, 2**20)
    body = reply["v"]["__array__"]
    assert json.loads(json.dumps(reply)) == {"v": {"__array__": ["float64", [4], [8, 32],
                                                                False]}}
    for twin in (copy.deepcopy(body), pickle.loads(pickle.dumps(body))):
        assert type(twin) is list and twin == body
    with pytest.raises(wire.WireError, match="outside its frame"):
        wire.decode(reply["v"])
