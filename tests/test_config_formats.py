import pytest

from axelsim.config.formats import FP16, FP32, NumberFormat, parse_format
from axelsim.config.macro import MacroConfig


@pytest.mark.parametrize(
    "text, expected",
    [("fp16", FP16), ("fp32", FP32), ("fixed24.16", NumberFormat("fixed", 24, 16)), ("fixed2.0", NumberFormat("fixed", 2, 0))],
)
def test_parse_format_accepts_known_names(text, expected):
    assert parse_format(text) == expected
    assert parse_format(text).name == text


@pytest.mark.parametrize("text", ["fp8", "fixed33.1", "fixed8.8", "fixed1.0", "fixed8", 16])
def test_parse_format_rejects_bad_names(text):
    with pytest.raises(ValueError, match="expected"):
        parse_format(text)


def test_defaults_are_the_papers_macro():
    macro = MacroConfig()
    assert (macro.head_dim, macro.bits, macro.levels) == (128, 3, 8)
    assert macro.vector_bits == 400 and macro.row_bits == 400
    assert macro.write_path.fwht_butterflies == 448 and macro.write_path.comparators == 896
