"""seedchip.emulate: capture of real PyTorch models, agreement with the config path,
number-format emulation, the on_chip API and the CLI. Skips when torch is absent
(except the test that the core imports without it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.e2e
def test_core_imports_without_torch():
    """`import seedchip` and `seedchip.emulate` work with torch unavailable; using
    emulate then says how to install it."""
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "import seedchip, seedchip.emulate, seedchip.perf.step, seedchip.cli.emulate_cmds\n"
        "try:\n"
        "    seedchip.emulate.on_chip('seedchip-ref')\n"
        "except seedchip.emulate.TorchMissingError as e:\n"
        "    print('OK', e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout and "seedchip[torch]" in r.stdout


torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from seedchip.emulate import hf_models, numerics  # noqa: E402
from seedchip.emulate.capture import Recorder  # noqa: E402
from seedchip.emulate.lower import lower  # noqa: E402
from seedchip.emulate.numerics import (Policy, quantize, round_e2m1, round_e4m3,  # noqa: E402
                                       round_e5m2)
from seedchip.emulate.price import PricingFormats, price  # noqa: E402
from seedchip.perf.deployment import make_deployment  # noqa: E402
from seedchip.perf.step import decode_step, prefill_step, step_cost  # noqa: E402

BASE = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=256, max_position_embeddings=1024, rms_norm_eps=1e-6,
            tie_word_embeddings=False)
# one tiny config per supported architecture family
TINY = {
    "llama": dict(BASE, architectures=["LlamaForCausalLM"], model_type="llama"),
    "mistral": dict(BASE, architectures=["MistralForCausalLM"], model_type="mistral", sliding_window=16),
    "qwen2": dict(BASE, architectures=["Qwen2ForCausalLM"], model_type="qwen2"),
    "qwen3": dict(BASE, architectures=["Qwen3ForCausalLM"], model_type="qwen3", head_dim=32),
    "mixtral": dict(BASE, architectures=["MixtralForCausalLM"], model_type="mixtral", num_local_experts=4,
                    num_experts_per_tok=2),
    "qwen3_moe": dict(BASE, architectures=["Qwen3MoeForCausalLM"], model_type="qwen3_moe", num_experts=8,
                      num_experts_per_tok=2, moe_intermediate_size=64, head_dim=32),
    "deepseek_v3": dict(BASE, architectures=["DeepseekV3ForCausalLM"], model_type="deepseek_v3",
                        num_key_value_heads=4, q_lora_rank=48, kv_lora_rank=32, qk_nope_head_dim=16,
                        qk_rope_head_dim=8, v_head_dim=16, n_routed_experts=8, num_experts_per_tok=2,
                        moe_intermediate_size=64, n_shared_experts=1, first_k_dense_replace=1, n_group=1,
                        topk_group=1, rope_scaling=None),
    "gpt_oss": dict(BASE, architectures=["GptOssForCausalLM"], model_type="gpt_oss", num_local_experts=4,
                    num_experts_per_tok=2, head_dim=32, layer_types=["sliding_attention", "full_attention"],
                    sliding_window=16),
    "seed_oss": dict(BASE, architectures=["SeedOssForCausalLM"], model_type="seed_oss", head_dim=32),
}
PROMPT = 40


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for fam, cfg in TINY.items():
        d = tmp_path_factory.mktemp(f"tiny-{fam}")
        (d / "config.json").write_text(json.dumps(cfg))
        out[fam] = d
    return out


@pytest.fixture(scope="module")
def built(tiny_dirs):
    cache = {}

    def get(fam):
        if fam not in cache:
            src = hf_models.resolve(str(tiny_dirs[fam]))
            cache[fam] = (src, hf_models.arch_of(src), hf_models.build(src, seed=0))
        return cache[fam]
    return get


def _ids(n, vocab=256, seed=1):
    return torch.randint(0, vocab, (1, n), generator=torch.Generator().manual_seed(seed))


def _prefill_decode(net, ids, quant=None):
    with torch.no_grad():
        with Recorder(quant=quant, model=net) as rec:
            out = net(ids, use_cache=True, logits_to_keep=1)
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        pre = rec.take("prefill")
        with Recorder(quant=quant, model=net) as rec:
            out2 = net(nxt, past_key_values=out.past_key_values, use_cache=True)
            out2.logits[:, -1].argmax(-1)
        dec = rec.take("decode")
    return pre, dec


# ------------------------------------------------------------------ number formats

@pytest.mark.unit
def test_e4m3_hand_values():
    x = torch.tensor([0.0, 448.0, 449.0, 500.0, -1e6, 1.0625, 1.1875, 240.0, 2.0 ** -9, 2.0 ** -10,
                      1.5 * 2.0 ** -9, 2.0 ** -6, 0.875 * 2.0 ** -6])
    want = [0.0, 448.0, 448.0, 448.0, -448.0, 1.0, 1.25, 240.0, 2.0 ** -9, 0.0,
            2.0 ** -8, 2.0 ** -6, 0.875 * 2.0 ** -6]
    assert round_e4m3(x).tolist() == want        # max 448, saturation, ties to even, subnormals
    y = torch.randn(20000) * 50
    y = y.clamp(-448, 448)
    assert torch.equal(round_e4m3(y), y.to(torch.float8_e4m3fn).float())


@pytest.mark.unit
def test_e5m2_hand_values():
    x = torch.tensor([57344.0, 61439.0, 1e9, -1e9, 2.0 ** -16, 2.0 ** -17, 1.125, 1.375, 3.0 * 2.0 ** -16])
    want = [57344.0, 57344.0, 57344.0, -57344.0, 2.0 ** -16, 0.0, 1.0, 1.5, 3.0 * 2.0 ** -16]
    assert round_e5m2(x).tolist() == want
    y = torch.randn(20000) * 1000
    assert torch.equal(round_e5m2(y), y.to(torch.float8_e5m2).float())


@pytest.mark.unit
def test_e2m1_grid():
    x = torch.tensor([0.2, 0.25, 0.3, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 7.0, -7.0])
    assert round_e2m1(x).tolist() == [0.0, 0.0, 0.5, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 6.0, -6.0]


@pytest.mark.unit
def test_scaled_formats_round_trip():
    # per-channel fp8: the row maximum maps to 448 exactly and comes back exactly
    w = torch.tensor([[1.0, -2.0, 0.5, 4.0], [100.0, 3.0, -7.0, 0.0]])
    q = quantize(w, "fp8", dim=-1)
    assert q[0, 3] == 4.0 and q[1, 0] == 100.0 and q[1, 3] == 0.0
    # per-tensor: one scale, amax/448
    q = quantize(w, "fp8-tensor", dim=-1)
    assert q[1, 0] == 100.0
    # int8 per channel: scale amax/127
    q = quantize(torch.tensor([[127.0, 1.4, -0.6, 63.5]]), "int8", dim=-1)
    assert q.tolist() == [[127.0, 1.0, -1.0, 64.0]]
    # MXFP4: one power-of-two (e8m0) scale per 32: amax 6 -> scale 2^(2-2) = 1, grid values exact
    blk = torch.tensor([6.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5, 0.0] * 4)
    assert torch.equal(quantize(blk, "mxfp4"), blk)
    # ... amax 5 -> scale 2^(floor(log2 5) - 2) = 1: 5 rounds to 4 (tie to even), 6 stays
    assert quantize(torch.tensor([5.0] + [0.0] * 31), "mxfp4")[0] == 4.0
    # NVFP4: block scale in e4m3 under a tensor scale; the block maximum round-trips
    v = torch.randn(4, 64)
    q = quantize(v, "nvfp4", dim=-1)
    blocks = v.reshape(4, 4, 16)
    idx = blocks.abs().argmax(-1, keepdim=True)
    assert torch.allclose(q.reshape(4, 4, 16).gather(-1, idx), blocks.gather(-1, idx), rtol=0.07)
    # errors shrink with bits
    x = torch.randn(64, 256)
    err = {f: float((quantize(x, f) - x).norm() / x.norm()) for f in ("bf16", "int8", "fp8", "mxfp4")}
    assert err["bf16"] < err["int8"] < err["fp8"] < err["mxfp4"] < 0.2


@pytest.mark.unit
def test_policy_and_pricing_formats():
    p = Policy.from_formats({"weights": "fp8", "kv": "fp8"})
    assert p.activation_format.name == "fp8"          # W8A8 like the oracle's deployment default
    pf = p.pricing()
    assert (pf.weights, pf.activations, pf.kv) == ("fp8", "fp8", "fp8")
    assert Policy.from_formats(None).is_identity
    w4 = Policy.from_formats({"weights": "mxfp4", "activations": "bf16"}).pricing()
    assert (w4.weights, w4.activations) == ("mxfp4", "bf16")
    from seedchip.errors import SeedChipError
    with pytest.raises(SeedChipError):
        Policy.from_formats({"weights": "fp9"})
    with pytest.raises(SeedChipError):
        Policy.from_formats({"wieghts": "fp8"})


# ------------------------------------------------------------------ capture

@pytest.mark.unit
def test_capture_llama_shapes(built):
    src, arch, net = built("llama")
    pre, dec = _prefill_decode(net, _ids(PROMPT))
    assert pre.num_ops > 50
    lo = lower(pre)
    assert lo.unpriced_ops == []
    gemms = {k.name: k.params for k in lo.kernels if k.kind == "gemm"}
    h, heads, kv, d = 128, 4, 2, 32
    qkv = gemms["layers.*.self_attn.q_proj+k_proj+v_proj"]
    assert (qkv["m"], qkv["n"], qkv["k"]) == (PROMPT, (heads + 2 * kv) * d, h)     # fused q/k/v
    gu = gemms["layers.*.mlp.gate_proj+up_proj"]
    assert (gu["m"], gu["n"], gu["k"]) == (PROMPT, 2 * 256, h)
    assert gemms["lm_head"]["m"] == 1                                              # logits_to_keep=1
    att = [k for k in lo.kernels if k.kind == "attention"]
    assert len(att) == 2 and all(a.params["causal"] for a in att)
    assert att[0].params["chunks"] == [(PROMPT, 0)] and att[0].params["kv_heads"] == kv
    datt = [k for k in lower(dec).kernels if k.kind == "attention"]
    assert datt[0].params["phase"] == "decode" and datt[0].params["decode_context"] == [PROMPT + 1]


@pytest.mark.unit
def test_sliding_window_read_from_mask(built):
    src, arch, net = built("mistral")
    pre, dec = _prefill_decode(net, _ids(PROMPT))
    att = [k for k in lower(pre).kernels if k.kind == "attention"]
    assert att[0].params["window"] == 16 and att[0].params["chunks"] == [(PROMPT, 0)]
    datt = [k for k in lower(dec).kernels if k.kind == "attention"]
    assert datt[0].params["decode_context"] == [16]


class _ConvLM(torch.nn.Module):
    """A model with an op the oracle has no equation for (a convolution)."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(64, 32)
        self.conv = torch.nn.Conv1d(32, 32, 3, padding=1)
        self.head = torch.nn.Linear(32, 64)

    def forward(self, ids):
        x = self.emb(ids).transpose(1, 2)
        x = torch.relu(self.conv(x)).transpose(1, 2)
        return self.head(x)


@pytest.mark.unit
def test_unknown_op_is_listed_not_dropped():
    import seedchip.emulate as emu
    net = _ConvLM().eval()
    with emu.on_chip("seedchip-ref", model=net) as chip:
        with torch.no_grad():
            net(_ids(8, 64))
    prof = chip.profile()
    assert "aten.convolution.default" in prof.unpriced_ops
    assert any(k.name == "head" and k.kind == "gemm" for k in prof.kernels)
    assert prof.time_s > 0


# ------------------------------------------------------------------ agreement with the config path

@pytest.mark.unit
@pytest.mark.parametrize("fam", list(TINY))
def test_capture_agrees_with_config_path(built, fam):
    src, arch, net = built(fam)
    dep = make_deployment("seedchip-ref")
    pre, dec = _prefill_decode(net, _ids(PROMPT))
    p_pre = price(lower(pre), dep, PricingFormats())
    p_dec = price(lower(dec), dep, PricingFormats())
    c_pre = step_cost(arch, dep, prefill_step(1, PROMPT)).time_s
    c_dec = step_cost(arch, dep, decode_step(1, PROMPT)).time_s
    assert p_pre.unpriced_ops == [] and p_dec.unpriced_ops == []
    # within 5% (the issue's bar); MLA decode differs by design, see the module doc of
    # seedchip.emulate.lower and the report: transformers decompresses the latent cache
    # every step, the config path prices the absorbed form
    assert p_pre.time_s == pytest.approx(c_pre, rel=0.05)
    assert p_dec.time_s == pytest.approx(c_dec, rel=0.05)


@pytest.mark.unit
def test_fp8_agrees_with_config_path(built):
    src, arch, net = built("qwen3")
    pol = Policy.from_formats({"weights": "fp8", "kv": "fp8"})
    pf = pol.pricing()
    dep = make_deployment("seedchip-ref", weight_format=pf.weights, act_format=pf.activations, kv_format=pf.kv)
    pre, dec = _prefill_decode(net, _ids(PROMPT), numerics.Quantizer(pol))
    assert price(lower(pre), dep, pf).time_s == pytest.approx(
        step_cost(arch, dep, prefill_step(1, PROMPT)).time_s, rel=0.05)
    assert price(lower(dec), dep, pf).time_s == pytest.approx(
        step_cost(arch, dep, decode_step(1, PROMPT)).time_s, rel=0.05)


@pytest.mark.unit
def test_eager_expert_loop_becomes_grouped_gemm(tiny_dirs):
    """The per-expert Python loop (experts_implementation='eager') prices like the
    grouped GEMM kernel: groups = experts that received tokens."""
    from transformers import AutoConfig, AutoModelForCausalLM
    cfg = dict(TINY["mixtral"])
    cfg.pop("architectures")
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = AutoModelForCausalLM.from_config(config, experts_implementation="eager").eval()
    pre, _ = _prefill_decode(net, _ids(PROMPT))
    ks = [k for k in lower(pre).kernels if k.kind == "gemm" and "experts" in k.name]
    assert ks and all(k.params["grouped"] for k in ks)
    assert all(1 <= k.params["groups"] <= 4 for k in ks)
    up = [k for k in ks if "gate_up" in k.name][0]
    assert up.params["rows"] == PROMPT * 2                     # every token's top-2 rows


# ------------------------------------------------------------------ on_chip API and numerics

@pytest.mark.unit
def test_on_chip_full_precision_is_exact(built):
    import seedchip.emulate as emu
    src, arch, net = built("llama")
    ids = _ids(24)
    with torch.no_grad():
        ref = net(ids).logits
        with emu.on_chip("seedchip-ref", formats=None) as chip:
            got = net(ids).logits
    assert torch.equal(ref, got)
    top = chip.profile().top(5)
    assert len(top) == 5 and top[0]["time_s"] >= top[-1]["time_s"] and "bound" in top[0]
    assert "total" in str(top)


@pytest.mark.unit
def test_on_chip_fp8_changes_numbers_and_reports_divergence(built):
    import seedchip.emulate as emu
    src, arch, net = built("qwen3")
    ids = _ids(24)
    with torch.no_grad():
        ref = net(ids).logits
        with emu.on_chip("seedchip-ref", formats={"weights": "fp8", "kv": "fp8"}) as chip:
            got = net(ids).logits
    assert not torch.equal(ref, got)
    n = chip.numerics()
    assert n.num_positions == 24 and 0.0 <= n.top1_agreement <= 1.0 and n.kl_divergence > 0
    assert "top-1" in str(n)
    assert chip.profile().formats["weights"] == "fp8"
    with torch.no_grad():
        with emu.on_chip("seedchip-ref", formats={"weights": "mxfp4"}) as chip4:
            net(ids)
    assert chip4.numerics().kl_divergence > n.kl_divergence          # 4 bits diverge more than 8


@pytest.mark.unit
def test_emulate_full_precision_top1_is_one(tiny_dirs):
    import seedchip.emulate as emu
    r = emu.emulate(str(tiny_dirs["llama"]), prompt_len=16, max_new_tokens=3, formats=None)
    d = r.to_dict()
    assert d["numerics"]["top1_agreement"] == 1.0 and d["numerics"]["kl_divergence"] == 0.0
    # per-layer deltas: the embeddings and every layer's output, all zero in full precision
    layers = d["numerics"]["layers"]
    assert [x["layer"] for x in layers] == list(range(d["num_layers"] + 1))
    assert all(x["rel_l2"] == 0.0 and x["max_abs"] == 0.0 for x in layers)
    assert len(d["generated_ids"]) == 3 and len(d["decode_step_times_s"]) == 2
    assert d["config_path"]["prefill_ratio"] == pytest.approx(1.0, abs=0.05)


# ------------------------------------------------------------------ CLI

CONTRACT = ("num_ops_captured", "unpriced_ops", "prefill_time_s", "decode_time_s_per_token", "top_ops", "numerics")


@pytest.mark.e2e
def test_cli_json_contract_and_equals_api(tiny_dirs):
    import typer
    from typer.testing import CliRunner

    import seedchip.emulate as emu
    from seedchip.cli import emulate_cmds
    app = typer.Typer()
    emulate_cmds.register(app)

    @app.callback()
    def _root():  # keep `emulate` a subcommand
        pass
    model = str(tiny_dirs["gpt_oss"])
    res = CliRunner().invoke(app, ["emulate", "--model", model, "--chip", "h200-sxm", "--format", "fp8",
                                   "--prompt-len", "12", "--max-new-tokens", "3", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    for key in CONTRACT:
        assert key in d
    assert isinstance(d["unpriced_ops"], list)
    assert {"name", "time_s", "bound"} <= set(d["top_ops"][0])
    assert {"format", "top1_agreement", "kl_divergence", "layers"} <= set(d["numerics"])
    drift = [x["rel_l2"] for x in d["numerics"]["layers"]]
    assert drift[0] == 0.0 and max(drift[1:]) > 0        # embeddings stay bf16; fp8 layers drift
    api = emu.emulate(model, chip="h200-sxm", formats={"weights": "fp8", "kv": "fp8"}, prompt_len=12,
                      max_new_tokens=3).to_dict()
    assert json.loads(json.dumps(api)) == d                   # CLI == API
    res = CliRunner().invoke(app, ["emulate", "--model", model, "--prompt", "hello"])
    assert res.exit_code != 0 and "tokenizer" in str(res.exception)


@pytest.fixture(scope="module")
def model_dir_with_tokenizer_and_weights(tmp_path_factory, built):
    """A tiny Llama directory as a user would have it: config, weights, tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    d = tmp_path_factory.mktemp("tiny-llama-full")
    words = ["[UNK]", "once", "upon", "a", "time", "there", "was", "chip", "that", "ran", "fast", "."]
    vocab = {w: i for i, w in enumerate(words)}
    vocab.update({f"w{i}": i for i in range(len(words), 256)})
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]").save_pretrained(str(d))
    src, arch, net = built("llama")
    net.save_pretrained(str(d))
    (d / "story.txt").write_text("once upon a time there was a chip that ran fast . " * 4)
    return d


@pytest.mark.unit
def test_generation_with_tokenizer_and_perplexity(model_dir_with_tokenizer_and_weights):
    import seedchip.emulate as emu
    d = model_dir_with_tokenizer_and_weights
    r = emu.emulate(str(d), prompt="once upon a time", max_new_tokens=3, formats={"weights": "int8"},
                    text_file=d / "story.txt").to_dict()
    assert r["random_weights"] is False and r["prompt_len"] == 4
    assert isinstance(r["text"], str) and len(r["generated_ids"]) == 3
    n = r["numerics"]
    assert n["perplexity_tokens"] == 47 and n["perplexity"] > 1.0
    assert n["perplexity_delta"] == pytest.approx(n["perplexity"] - n["perplexity_ref"])
    full = emu.emulate(str(d), prompt="once upon a time", max_new_tokens=2, text_file=d / "story.txt").to_dict()
    assert full["numerics"]["perplexity_delta"] == 0.0


@pytest.mark.e2e
def test_cli_subprocess_when_registered(tiny_dirs):
    """`seedchip emulate` through the real entry point (skips until cli/main.py registers it)."""
    model = str(tiny_dirs["llama"])
    r = subprocess.run([sys.executable, "-c", "from seedchip.cli.main import main; main()", "emulate", "--model", model,
                        "--prompt-len", "8", "--max-new-tokens", "2", "--json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    if r.returncode == 2 and "emulate" in r.stderr and "No such command" in r.stderr:
        pytest.skip("seedchip emulate is not registered in cli/main.py yet")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for key in CONTRACT:
        assert key in d
    bad = subprocess.run([sys.executable, "-c", "from seedchip.cli.main import main; main()", "emulate", "--model",
                          "no-such-model"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "unknown model" in bad.stderr
