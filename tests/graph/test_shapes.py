"""Changing batch and shapes: baked constants patched or refused, verified per sample, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_models as M
import pytest

from trtforge.errors import TrtforgeError
from trtforge.graph.model import graph_inputs, graph_outputs
from trtforge.graph.shapes import Batch, change_shapes, reshape, set_batch, target_shapes
from trtforge.graph.verify import session, verify


def _run(model: onnx.ModelProto, **feeds: np.ndarray) -> list[np.ndarray]:
    return session(model).run(None, feeds)


@pytest.mark.parametrize("through_concat", [False, True])
@pytest.mark.parametrize("exported", [1, 2])
def test_baked_reshape_is_patched_and_matches_per_sample(exported: int, through_concat: bool) -> None:
    original = M.flatten(exported, through_concat)
    result = change_shapes(original, target_shapes(original, 4))
    assert result.patched == ("Reshape 'flatten'",)
    assert graph_outputs(result.model)[0].shape == (4, 5)
    x = np.random.default_rng(1).standard_normal((4, 3, 4, 4)).astype(np.float32)
    (y,) = _run(result.model, x=x)
    for i in range(0, 4, exported):  # the original, at its own batch, sample by sample
        (want,) = _run(original, x=x[i : i + exported])
        np.testing.assert_allclose(y[i : i + exported], want, rtol=1e-5, atol=1e-5)


def test_unpatched_baked_reshape_fails_the_run_check() -> None:
    original = M.flatten(1)
    naive = onnx.ModelProto()
    naive.CopyFrom(original)  # the usual recipe: overwrite dim 0 and nothing else
    naive.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    naive.graph.output[0].type.tensor_type.shape.dim[0].dim_value = 4
    with pytest.raises(TrtforgeError, match="nothing was written"):
        verify(original, naive, old_batch=1)


def test_unpatchable_constant_is_refused_by_name_and_nothing_written(tmp_path: Path) -> None:
    src = tmp_path / "zeros.onnx"
    onnx.save(M.baked_zeros(2), src)
    out = tmp_path / "out.onnx"
    with pytest.raises(TrtforgeError, match="ConstantOfShape 'zeros'.*re-export"):
        reshape(src, out, 4)
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_batch_one_suspect_is_named_when_the_run_check_fails(tmp_path: Path) -> None:
    src = tmp_path / "zeros1.onnx"
    onnx.save(M.baked_zeros(1), src)
    with pytest.raises(TrtforgeError, match="fails to run.*ConstantOfShape 'zeros'"):
        reshape(src, tmp_path / "out.onnx", 4)
    assert not (tmp_path / "out.onnx").exists()


def test_fixed_to_dynamic_and_back(tmp_path: Path) -> None:
    src = tmp_path / "fixed.onnx"
    onnx.save(M.flatten(2), src)
    dyn = reshape(src, tmp_path / "dyn.onnx", "dynamic", dim_name="n")
    assert graph_inputs(dyn.model)[0].shape == ("n", 3, 4, 4)
    assert graph_outputs(dyn.model)[0].shape[0] == "n"
    assert "x:3x3x4x4" in dyn.check  # probed at a batch unlike the exported one
    x = np.ones((7, 3, 4, 4), np.float32)
    assert _run(dyn.model, x=x)[0].shape == (7, 5)
    back = reshape(tmp_path / "dyn.onnx", tmp_path / "b3.onnx", 3)
    assert graph_inputs(back.model)[0].shape == (3, 3, 4, 4)
    assert onnx.load(tmp_path / "b3.onnx").graph.output[0].type.tensor_type.shape.dim[0].dim_value == 3


def test_dynamic_model_fixed() -> None:
    fixed = set_batch(M.dynamic(), Batch.parse(5))
    assert graph_inputs(fixed)[0].shape == (5, 4)
    assert graph_outputs(fixed)[0].shape == (5, 2, 2)


def test_multi_input_reshape_and_slice_follow_the_batch() -> None:
    result = change_shapes(M.two_inputs(2), target_shapes(M.two_inputs(2), 4))
    assert set(result.patched) == {"Reshape 'split'", "Slice 'take_all'"}
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    y, z = _run(result.model, a=a, b=a)
    assert y.shape == (4, 2, 2) and z.shape == (4, 4)
    np.testing.assert_array_equal(z, a)


def test_stale_value_info_is_replaced() -> None:
    original = M.flatten(1)
    assert original.graph.value_info[0].type.tensor_type.shape.dim[0].dim_value == 1
    changed = set_batch(original, Batch.parse(4))
    flat = [v for v in changed.graph.value_info if v.name == "flat"]
    assert [d.dim_value for d in flat[0].type.tensor_type.shape.dim] == [4, 48]


def test_shapes_set_full_shapes_and_name_dynamic_dims() -> None:
    model = M.two_inputs(2)
    new = target_shapes(model, shapes="a:-1x4,b:-1x4")
    assert new == {"a": ("batch", 4), "b": ("batch", 4)}
    result = change_shapes(model, new)
    assert [t.shape for t in graph_inputs(result.model)] == [("batch", 4), ("batch", 4)]


def test_shapes_with_a_wrong_name_lists_the_inputs() -> None:
    with pytest.raises(TrtforgeError, match="no input named 'c'.*a, b"):
        target_shapes(M.two_inputs(2), shapes="c:4x4")


def test_simplify_folds_constants_and_is_verified(tmp_path: Path) -> None:
    src = tmp_path / "f.onnx"
    onnx.save(M.foldable(), src)
    result = reshape(src, tmp_path / "s.onnx", simplify=True)
    assert [n.op_type for n in result.model.graph.node] == ["Add"]
    assert "matched the original" in result.check
    with pytest.raises(TrtforgeError, match="nothing to do"):
        reshape(src, tmp_path / "t.onnx")


def test_constant_operand_of_batch_size_is_refused() -> None:
    model = M.baked_operand(2)
    with pytest.raises(TrtforgeError, match="from 2 to dynamic.*Add 'add_state'"):
        set_batch(model, Batch.parse("dynamic"))
