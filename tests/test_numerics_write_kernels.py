"""The specialised fp32 write kernel against the generic one, bit for bit.

`write_vectors(kernel="fp32")` checks and rounds the input inside the kernel and runs the
norm extractor, FWHT and thresholds in native float32; `kernel="generic"` rounds every
operation through the format dispatcher after numpy-side checks. Both must give the same
indices, FP16 norm bits, saturation counts, operation counts and error messages.
"""

import numpy as np
import pytest

from axelsim.config.macro import FormatsConfig
from axelsim.errors import NumericsError
from axelsim.numerics import golden
from axelsim.numerics.golden import NumericsSpec, fp32_write_applies, write_vectors
from axelsim.numerics.hadamard import SignRom


def make_spec(dim=128, bits=3, **formats):
    return NumericsSpec.build(dim, bits, SignRom.from_seed(3, 2, dim), FormatsConfig(**formats))


def edge_vectors(dim: int, n_random: int, seed: int) -> np.ndarray:
    """float64 rows: random scales, zero rows, saturating norms, subnormals, rounding ties,
    exact zeros after the rotation (ties with the zero threshold) and small integers."""
    rng = np.random.default_rng(seed)
    scales = 2.0 ** rng.integers(-30, 14, (n_random, 1))
    rows = [rng.standard_normal((n_random, dim)) * scales]
    rows.append(np.zeros((3, dim)))
    rows.append(-np.zeros((1, dim)))
    rows.append(np.full((2, dim), 60000.0) * rng.choice([-1.0, 1.0], (2, dim)))  # norm > 65504
    rows.append(np.full((1, dim), 65504.0))
    sub = 2.0**-24 * rng.integers(-1023, 1024, (4, dim))  # fp16 subnormals
    rows.append(sub)
    rows.append(np.full((1, dim), 2.0**-25))  # halfway between 0 and the smallest subnormal
    rows.append(np.full((1, dim), 3 * 2.0**-25))  # tie between two subnormals
    ties = (1.0 + rng.integers(0, 1024, (4, dim)) * 2.0**-10 + 2.0**-11) * rng.choice([-1.0, 1.0], (4, dim))
    rows.append(ties * 2.0 ** rng.integers(-8, 8, (4, 1)))  # fp16 round-to-even ties
    pair = np.zeros((2, dim))
    pair[0, :2] = 1.0
    pair[1, :2] = [1.5, -1.5]  # y has exact zeros: ties with the zero threshold
    rows.append(pair)
    one = np.zeros((1, dim))
    one[0, dim // 2] = -7.0
    rows.append(one)
    rows.append(rng.integers(-2, 3, (6, dim)).astype(np.float64))
    rows.append(rng.standard_normal((2, dim)) * 1e-6)  # underflowing squares in fp16 input
    return np.concatenate(rows)


def assert_same(a, b):
    assert np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.norms.view(np.uint16), b.norms.view(np.uint16))
    assert a.norm_saturations == b.norm_saturations
    assert a.actions == b.actions


@pytest.mark.parametrize("dim, bits", [(128, 3), (8, 1), (32, 2), (256, 4), (1024, 8)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("input_fmt", ["fp16", "fp32"])
def test_fp32_kernel_equals_generic_kernel(dim, bits, dtype, input_fmt):
    spec = make_spec(dim, bits, input=input_fmt)
    x = edge_vectors(dim, 150, dim + bits)
    if input_fmt == "fp32" and dtype is not np.float16:
        x = np.concatenate([x, np.full((1, dim), 1e20), np.full((1, dim), 1e-40)])  # overflowing / subnormal squares
    with np.errstate(over="ignore"):
        arr = x.astype(dtype)
    for layer in (0, 1):
        fast = write_vectors(spec, arr, layer, kernel="fp32")
        assert_same(fast, write_vectors(spec, arr, layer, kernel="generic"))
    assert fast.norm_saturations >= 2 and np.any(fast.indices == (1 << bits) - 1)


@pytest.mark.parametrize("n_vec", [0, 1, 63, 64, 65, 200])
def test_fp32_kernel_any_count_and_layout(n_vec):
    spec = make_spec()
    x = np.random.default_rng(n_vec).standard_normal((2 * n_vec, 128)).astype(np.float32)[::2]  # not contiguous
    assert_same(write_vectors(spec, x, 1, kernel="fp32"), write_vectors(spec, x, 1, kernel="generic"))
    ints = np.random.default_rng(n_vec).integers(-9, 9, (n_vec, 128)).astype(np.int16)
    assert_same(write_vectors(spec, ints, 0, kernel="fp32"), write_vectors(spec, ints, 0, kernel="generic"))


def error_of(call):
    with pytest.raises(NumericsError) as err:
        call()
    return err.value.source, err.value.where, err.value.expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("case", ["nan", "inf", "-inf", "range", "range_then_nan", "nan_then_range"])
def test_fp32_kernel_raises_the_generic_errors(dtype, case):
    if dtype is np.float16 and "range" in case:
        pytest.skip("every float16 value is within the fp16 input range")
    spec = make_spec()
    x = np.random.default_rng(7).standard_normal((3, 70, 128))
    where = {"nan": [(2, 65, 9, np.nan)], "inf": [(1, 3, 0, np.inf)], "-inf": [(0, 69, 127, -np.inf)],
             "range": [(1, 5, 7, 7e4), (2, 0, 0, -1e5)],
             "range_then_nan": [(0, 1, 1, 7e4), (1, 0, 3, np.nan)],
             "nan_then_range": [(0, 1, 1, np.nan), (0, 0, 3, -7e4)]}[case]
    for h, t, i, value in where:
        x[h, t, i] = value
    arr = x.astype(dtype)
    for lead in (3, 2):
        a = arr if lead == 3 else arr.reshape(-1, 128)
        fast = error_of(lambda: golden._write(spec, a, 0, "layers.0.k", "trace", "fp32"))
        assert fast == error_of(lambda: golden._write(spec, a, 0, "layers.0.k", "trace", "generic"))
        assert fast[1] == "layers.0.k"
    heads = error_of(lambda: golden.write_heads(spec, arr, 0, "layers.0.k", "trace"))
    assert heads == error_of(lambda: golden._write(spec, arr, 0, "layers.0.k", "trace", "generic"))


def test_fp32_kernel_range_check_follows_the_input_format():
    spec = make_spec(input="fp32")
    x = np.full((2, 128), 7e4, np.float32)
    assert_same(write_vectors(spec, x, 0, kernel="fp32"), write_vectors(spec, x, 0, kernel="generic"))
    big = np.full((1, 128), 1e39)  # beyond float32: a range error of the fp32 input format
    assert error_of(lambda: write_vectors(spec, big, 0, kernel="fp32")) == error_of(
        lambda: write_vectors(spec, big, 0, kernel="generic"))


def test_kernel_choice():
    assert fp32_write_applies(make_spec()) and fp32_write_applies(make_spec(input="fp32"))
    assert not fp32_write_applies(make_spec(rotator="fp16"))
    assert not fp32_write_applies(make_spec(rotator="fp32", input="fixed16.8"))
    with pytest.raises(ValueError):
        write_vectors(make_spec(rotator="fp16"), np.zeros((1, 128), np.float32), 0, kernel="fp32")
    with pytest.raises(ValueError):
        write_vectors(make_spec(), np.zeros((1, 128), np.float32), 0, kernel="fast")
