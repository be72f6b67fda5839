import math

import pytest

from seedchip import units
from seedchip.errors import SpecError, UnknownNameError
from seedchip.formats import get_format

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text,dim,value", [
    ("4.8 TB/s", "bytes/s", 4.8e12),
    ("141 GB", "bytes", 141e9),
    ("80 GiB", "bytes", 80 * 2**30),
    ("228 KiB", "bytes", 228 * 1024),
    ("989.4 TFLOP/s", "flop/s", 989.4e12),
    ("400 Gb/s", "bytes/s", 50e9),
    ("3.5 pJ/bit", "j/byte", 28e-12),
    ("2 us", "s", 2e-6),
    ("1.83 GHz", "hz", 1.83e9),
    ("700 W", "w", 700.0),
    (12.5, "bytes", 12.5),
])
def test_parse_si(text, dim, value):
    assert math.isclose(units.parse(text, dim), value, rel_tol=1e-12)


@pytest.mark.parametrize("text,dim", [("4.8 TB", "bytes/s"), ("fast", "bytes"), ("3 furlongs", "bytes"),
                                      ("inf GB", "bytes"), (True, "bytes")])
def test_parse_rejects(text, dim):
    with pytest.raises(SpecError):
        units.parse(text, dim)


def test_decimal_and_binary_prefixes_differ():
    assert units.parse("1 GiB", "bytes") / units.parse("1 GB", "bytes") == pytest.approx(1.073741824)


def test_formatter():
    assert units.fmt(141e9, "bytes") == "141 GB"
    assert units.fmt(2e-4, "s") == "200 µs"
    assert units.fmt(4.8e12, "bytes/s") == "4.8 TB/s"
    assert units.fmt(None, "s") == "—"


def test_block_scaled_formats_have_fractional_bytes():
    assert get_format("fp4").bytes_per_element == 9 / 16      # 4 bits + 8-bit scale per 16
    assert get_format("mxfp4").bytes_per_element == 17 / 32   # 4.25 bits: 8-bit scale per 32
    assert get_format("fp8").bytes_per_element == 1
    assert get_format("bf16").bytes_per_element == 2
    assert get_format("FP8").name == "fp8"


def test_unknown_format_suggests():
    with pytest.raises(UnknownNameError, match="fp8"):
        get_format("fp9")
