"""The oracle's plain-Python hot paths against the vectorised models they stand for:
equal to the last bit (the simulator's results depend on it), over every chip, the
ideal and the measured calibration, grouped, per-head and latent (MLA) kernels, 8- and
16-bit caches, sliding windows, and with and without the longest sequence."""

from __future__ import annotations

import random

import pytest

import seedchip
from seedchip.hardware import catalog_ids
from seedchip.errors import SpecError
from seedchip.formats import get_format, wider
from seedchip.perf import attention, ops
from seedchip.perf.calibration import IDEAL, load_calibration

pytestmark = pytest.mark.unit

# (heads, kv_heads, flops per pair per head, KV elements per token, query elements per head)
SHAPES = [(8, 1, 512.0, 256, 128), (32, 8, 512.0, 2048, 128), (64, 64, 512.0, 16384, 128), (16, 1, 2304.0, 576, 576),
          (4, 4, 256.0, 512, 64), (64, 8, 512.0, 2048, 64)]


@pytest.mark.parametrize("chip_id", catalog_ids())
@pytest.mark.parametrize("cal", [IDEAL, load_calibration("h100-sxm")], ids=["ideal", "h100"])
def test_decode_attention_scalar_equals_model(chip_id, cal):
    chip = seedchip.load_chip(chip_id)
    rnd = random.Random(chip_id)
    for heads, kv_heads, fpp, kve, q in SHAPES:
        for kv_bytes in (1.0, 2.0):
            for _ in range(25):
                n = rnd.choice([1, 2, 3, 7, 17, 64, 255, 1024])
                longest = float(rnd.randint(1, 200_000))
                window = rnd.choice([0, 0, 128, 4096])
                keys = min(longest, window) if window else longest
                ctx = float(rnd.randint(int(keys), int(keys) * n))
                for mx in (None, longest):
                    kw = dict(num_seqs=n, context_tokens=ctx, heads=heads, kv_heads=kv_heads,
                              flops_per_pair_per_head=fpp, kv_elems_per_token=kve, act_bytes=2.0, kv_bytes=kv_bytes,
                              q_elems_per_head=q, max_context_tokens=mx, window=window)
                    want = attention.decode_attention_model(chip, cal, **kw)
                    got = attention.decode_attention_scalar(chip, cal, **kw)
                    assert got == want, (kw, got, want)


@pytest.mark.parametrize("chip_id", catalog_ids())
@pytest.mark.parametrize("cal", [IDEAL, load_calibration("h100-sxm")], ids=["ideal", "h100"])
def test_decode_attention_run_equals_each_op(chip_id, cal):
    """The vectorised model over many contexts with ``exact=True`` (a static batch's decode
    steps priced at once) equals the one-op path element by element."""
    import numpy as np
    chip = seedchip.load_chip(chip_id)
    for heads, kv_heads, fpp, kve, q in SHAPES:
        for kv_bytes in (1.0, 2.0):
            for n, window in ((1, 0), (7, 128), (64, 0), (255, 4096)):
                longest = np.array([1.0, 2.0, 127.0, 128.0, 129.0, 4095.0, 4097.0, 33_000.0, 200_000.0])
                capped = np.minimum(longest, window) if window else longest
                kw = dict(num_seqs=n, heads=heads, kv_heads=kv_heads, flops_per_pair_per_head=fpp,
                          kv_elems_per_token=kve, act_bytes=2.0, kv_bytes=kv_bytes, q_elems_per_head=q, window=window)
                run = attention.decode_attention_model(chip, cal, context_tokens=n * capped,
                                                       max_context_tokens=longest, exact=True, **kw)
                for i in range(len(longest)):
                    one = attention.decode_attention_scalar(chip, cal, context_tokens=float(n * capped[i]),
                                                            max_context_tokens=float(longest[i]), **kw)
                    for key in ("time_s", "memory_s", "compute_s", "flops", "hbm_bytes"):
                        assert float(np.broadcast_to(run[key], longest.shape)[i]) == one[key], (key, n, longest[i])


def test_pnorm_exact_equals_the_scalar_join():
    """The arrays' join equals the one-op join bit for bit: zeros, ties, either side larger,
    sharp and soft p, and p large enough to be a max."""
    import numpy as np
    from seedchip.perf import kernels
    rnd = random.Random(7)
    a = [0.0, 0.0, 1e-9, 3.0, 2.5] + [rnd.uniform(0, 1e-3) for _ in range(200)]
    b = [0.0, 1e-6, 1e-9, 1.0, 7.5] + [rnd.choice([0.0, rnd.uniform(0, 1e-3)]) for _ in range(200)]
    for p in (1.0, 1.7, 2.0, 3.3, 12.0, 1e6):
        got = kernels.pnorm_exact(np.array(a), np.array(b), p)
        assert got.tolist() == [kernels.pnorm_scalar(x, y, p) for x, y in zip(a, b)], p


@pytest.mark.parametrize("chip_id", catalog_ids())
@pytest.mark.parametrize("cal", [IDEAL, load_calibration("h100-sxm")], ids=["ideal", "h100"])
def test_gemm_op_is_the_models_figures(chip_id, cal):
    """ops.gemm's scalar path (what the chip, calibration and formats fix computed once) makes
    the op that gemm_model's figures make, field by field, for every format pair."""
    chip = seedchip.load_chip(chip_id)
    rnd = random.Random(chip_id + "/gemm")
    pairs = [("bf16", "bf16"), ("fp8", "fp8"), ("bf16", "fp8"), ("fp8", "fp8-block"), ("fp8", "fp4"),
             ("bf16", "mxfp4"), ("fp8", "int8"), ("fp32", "fp16")]
    for a, b in pairs:
        for _ in range(12):
            m, n, k = rnd.choice([1, 7, 64, 333, 4096]), rnd.randint(1, 30_000), rnd.randint(1, 30_000)
            g, c = rnd.choice([1, 1, 8, 64]), rnd.choice(["bf16", "fp8"])
            fa, fb, fc = get_format(a), get_format(b), get_format(c)
            r = ops.gemm_model(chip, cal, m, n, k, fa, fb, fc, g)
            flops = float(r["flops"])
            want = ops._finish(chip, cal, "w", "gemm", compute_s=float(r["compute_s"]), memory_s=float(r["memory_s"]),
                               comm_s=0.0, overhead_s=float(r["overhead_s"]), time_s=float(r["time_s"]), flops=flops,
                               matrix_class=r["matrix_class"], vector_flops=0.0, hbm_bytes=float(r["hbm_bytes"]),
                               sram_bytes=flops / 128.0 * (fa.bytes_per_element + fb.bytes_per_element),
                               comm_bytes=0.0, detail=f"{g}x[{m}x{n}x{k}] {wider(fa, fb).name} on {r['matrix_class']}")
            assert ops.gemm.__wrapped__(chip, cal, m, n, k, a, b, c, g, "w") == want, (a, b, c, m, n, k, g)


def test_a_gemm_of_no_rows_is_refused_by_name():
    chip, cal = seedchip.load_chip("h100-sxm"), load_calibration("h100-sxm")
    for args, label in (((0, 8, 8, 1), "m = 0"), ((8, -1, 8, 1), "n = -1"), ((8, 8, 0, 1), "k = 0"),
                        ((8, 8, 8, 0), "groups = 0")):
        m, n, k, g = args
        with pytest.raises(SpecError, match=f"gemm {label} must be a positive integer"):
            ops.gemm.__wrapped__(chip, cal, m, n, k, groups=g)


def test_an_op_from_positional_figures_is_the_keyword_built_op():
    """The hot paths build an OpCost from its fields in order (ops._finished): the same op as
    one built by name, whatever the field order becomes."""
    chip, cal = seedchip.load_chip("h100-sxm"), load_calibration("h100-sxm")
    o = ops._finished(chip, cal, "x", "gemm", 1e-5, 2e-5, 3e-6, 4e-6, 3e-5, 1e9, "bf16", 5.0, 1e6, 2e6, 7.0, "d")
    work, active_w, _ = ops._power_terms(chip, "gemm", 1e9, "bf16", 5.0, 1e6, 2e6, 7.0)
    want = ops.OpCost(name="x", op_class="gemm", time_s=3e-5, flops=1e9 + 5.0, hbm_bytes=1e6, comm_bytes=7.0,
                      energy_j=work + (chip.energy.idle_w + active_w) * 3e-5, bound="memory", compute_s=1e-5,
                      memory_s=2e-5, comm_s=3e-6, overhead_s=4e-6, count=1, detail="d")
    assert o == want and o._asdict() == want._asdict()
