"""Shape strings: --shapes and min/opt/max ranges, parsed into values or refused with a TrtforgeError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trtforge.config import TensorSpec
from trtforge.errors import TrtforgeError
from trtforge.graph.ranges import InputShapes, ShapeRange, parse_profiles, validate_profiles

IMAGE = TensorSpec("image", "float32", ("batch", 3, 224, 224))
MASK = TensorSpec("mask:0", "int64", ("batch", "seq"))
FIXED = TensorSpec("scale", "float32", (1,))


def test_parses_trtexec_syntax_with_quoted_names() -> None:
    r = ShapeRange.parse(
        "image:1x3x224x224,'mask:0':1x8", "image:4x3x224x224,'mask:0':4x64", "image:8x3x224x224,'mask:0':8x128"
    )
    assert r.inputs == ("image", "mask:0")
    assert r.min == {"image": (1, 3, 224, 224), "mask:0": (1, 8)}
    assert r.opt["mask:0"] == (4, 64)
    assert r.max["image"] == (8, 3, 224, 224)


def test_unquoted_name_splits_at_the_last_colon() -> None:
    assert InputShapes.parse("input:0:2x3").as_dict() == {"input:0": (2, 3)}


def test_shapes_allow_minus_one_and_words() -> None:
    assert InputShapes.parse("image:-1x3xHxW").as_dict() == {"image": (-1, 3, "H", "W")}


def test_missing_range_kinds_default_from_the_others() -> None:
    r = ShapeRange.parse("image:1x3x224x224", None, "image:8x3x224x224")
    assert r.opt == r.max
    fixed = ShapeRange.fixed("image:2x3x224x224")
    assert fixed.min == fixed.opt == fixed.max


@pytest.mark.parametrize(
    ("lo", "opt", "hi", "message"),
    [
        ("image:4x3x224x224", "image:2x3x224x224", "image:8x3x224x224", "min <= opt <= max"),
        ("image:1x3x224", "image:1x3x224x224", "image:1x3x224x224", "different ranks"),
        ("image:1x3x224x224", "image:1x3x224x224", "other:1x3", "but not in"),
    ],
)
def test_bad_ranges_say_what_is_wrong(lo: str, opt: str, hi: str, message: str) -> None:
    with pytest.raises(TrtforgeError, match=message):
        ShapeRange.parse(lo, opt, hi)


def test_validate_checks_the_model() -> None:
    ok = ShapeRange.parse(
        "image:1x3x224x224,mask:1x8", "image:2x3x224x224,mask:2x8", "image:4x3x224x224,mask:4x16"
    ).validate([IMAGE, MASK, FIXED])
    assert ok.inputs == ("image", "mask:0")  # the model's exact name
    with pytest.raises(TrtforgeError, match="fixed at 3"):
        ShapeRange.parse("image:1x1x224x224,mask:1x8", None, None).validate([IMAGE, MASK])
    with pytest.raises(TrtforgeError, match="has 4 dimensions"):
        ShapeRange.fixed("image:1x224x224,mask:1x8").validate([IMAGE, MASK])
    with pytest.raises(TrtforgeError, match="no shape in the range"):
        ShapeRange.fixed("image:1x3x224x224").validate([IMAGE, MASK])
    with pytest.raises(TrtforgeError, match="no input named 'nope'.*image, mask:0"):
        ShapeRange.fixed("nope:1x3x224x224").validate([IMAGE, MASK])


def test_several_profiles() -> None:
    profiles = parse_profiles(
        ["image:1x3x224x224", "image:8x3x224x224"], [], ["image:4x3x224x224", "image:16x3x224x224"]
    )
    assert [p.max["image"][0] for p in validate_profiles(profiles, [IMAGE])] == [4, 16]
    with pytest.raises(TrtforgeError, match="same number"):
        parse_profiles(["image:1x3x224x224"], [], ["image:4x3x224x224", "image:16x3x224x224"])
    with pytest.raises(TrtforgeError, match="profile 1"):
        validate_profiles(profiles[:1] + (ShapeRange.fixed("image:1x1x1x1"),), [IMAGE])


def test_shapes_validate_names_and_ranks() -> None:
    assert InputShapes.parse("image:4x3x224x224").validate([IMAGE]).as_dict() == {"image": (4, 3, 224, 224)}
    with pytest.raises(TrtforgeError, match="3 dimensions"):
        InputShapes.parse("image:4x3x224").validate([IMAGE])
    with pytest.raises(TrtforgeError, match="twice"):
        InputShapes.parse("mask:1x2,mask:0:1x2").validate([MASK])


_ALPHABET = st.sampled_from(list("abx:,'0123456789-_ ") + ["1x3", "input:", "'a:b'", ":0", "-1", "x"])
_TEXT = st.one_of(st.text(max_size=40), st.lists(_ALPHABET, max_size=12).map("".join))


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_any_string_parses_or_raises_the_user_error(text: str) -> None:
    try:
        shapes = InputShapes.parse(text)
    except TrtforgeError:
        return
    for name, dims in shapes.shapes:
        assert name and dims
        assert all((isinstance(d, int) and (d >= 1 or d == -1)) or (isinstance(d, str) and d) for d in dims)


@settings(max_examples=300, deadline=None)
@given(_TEXT, st.one_of(st.none(), _TEXT), st.one_of(st.none(), _TEXT))
def test_any_range_strings_parse_or_raise_the_user_error(lo: str, opt: str | None, hi: str | None) -> None:
    try:
        r = ShapeRange.parse(lo, opt, hi)
    except TrtforgeError:
        return
    for e in r.entries:
        assert len(e.min) == len(e.opt) == len(e.max) > 0
        assert all(1 <= a <= b <= c for a, b, c in zip(e.min, e.opt, e.max))
    try:
        r.validate([IMAGE, MASK])
    except TrtforgeError:
        pass
