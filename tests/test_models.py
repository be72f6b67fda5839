"""Model layer: HF config translation, exact parameter counts against published figures,
per-layer patterns, KV sizes, loading by zoo id / path, and the error paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from seedchip.errors import SpecError, UnknownNameError, UnsupportedArchitectureError
from seedchip.model import ModelArch, arch_from_hf_config, count_params, load_model, zoo_ids
from seedchip.model.hf import SUPPORTED_ARCHITECTURES
from seedchip.model.zoo import CONFIG_DIR

pytestmark = pytest.mark.unit

# The project's shared data folder sits beside the checkout (../shared), as in CI.
SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "data" / "models"
needs_shared = pytest.mark.skipif(not SHARED_MODELS.is_dir(), reason="../shared/data/models not present")

# zoo id -> file in the shared folder it is a verbatim copy of
SHARED_FILE = {
    "llama-2-7b": "meta-llama--Llama-2-7b-hf.json",
    "llama-2-70b": "meta-llama--Llama-2-70b-hf.json",
    "llama-3.1-8b": "meta-llama--Meta-Llama-3.1-8B.json",
    "llama-3.1-70b": "meta-llama--Meta-Llama-3.1-70B.json",
    "llama-3.1-405b": "meta-llama--Meta-Llama-3.1-405B.json",
    "mistral-7b": "mistralai--Mistral-7B-v0.1.json",
    "mixtral-8x7b": "mistralai--Mixtral-8x7B-v0.1.json",
    "mixtral-8x22b": "mistralai--Mixtral-8x22B-v0.1.json",
    "qwen3-8b": "Qwen--Qwen3-8B.json",
    "qwen3-32b": "Qwen--Qwen3-32B.json",
    "qwen3-30b-a3b": "Qwen--Qwen3-30B-A3B.json",
    "qwen3-235b-a22b": "Qwen--Qwen3-235B-A22B.json",
    "qwen3-coder-480b-a35b": "Qwen--Qwen3-Coder-480B-A35B-Instruct.json",
    "deepseek-v3": "deepseek-ai--DeepSeek-V3.json",
    "deepseek-r1": "deepseek-ai--DeepSeek-R1.json",
    "kimi-k2": "moonshotai--Kimi-K2-Instruct.json",
    "gpt-oss-20b": "openai--gpt-oss-20b.json",
    "gpt-oss-120b": "openai--gpt-oss-120b.json",
    "seed-oss-36b": "ByteDance-Seed--Seed-OSS-36B-Instruct.json",
}
UNSUPPORTED_SHARED = [
    "meta-llama--Llama-4-Scout-17B-16E-Instruct.json",
    "meta-llama--Llama-4-Maverick-17B-128E-Instruct.json",
    "Qwen--Qwen3.5-397B-A17B.json",
    "google--gemma-4-26B-A4B.json",
    "deepseek-ai--DeepSeek-V3.2.json",
    "zai-org--GLM-5.json",
    "MiniMaxAI--MiniMax-M2.5.json",
]

B = 1e9


def rel_err(count: float, published: float) -> float:
    return abs(count - published) / published


# --------------------------------------------------------------------------- published totals

# (zoo id, published total, source)
PUBLISHED_TOTAL = [
    ("llama-2-7b", 6.74 * B),  # Hugging Face meta-llama/Llama-2-7b-hf page, safetensors count, 2023
    ("llama-2-70b", 68.98 * B),  # Hugging Face meta-llama/Llama-2-70b-hf page, safetensors count, 2023
    ("llama-3.1-8b", 8.03 * B),  # Hugging Face meta-llama/Meta-Llama-3.1-8B page, safetensors count, 2024
    ("llama-3.1-70b", 70.6 * B),  # Hugging Face meta-llama/Meta-Llama-3.1-70B page, safetensors count, 2024
    ("llama-3.1-405b", 405.9 * B),  # Hugging Face meta-llama/Meta-Llama-3.1-405B page, safetensors count, 2024
    ("mistral-7b", 7.24 * B),  # Hugging Face mistralai/Mistral-7B-v0.1 page, safetensors count, 2023
    ("mixtral-8x7b", 46.7 * B),  # Mistral AI, "Mixtral of experts" announcement, Dec 2023
    ("mixtral-8x22b", 141 * B),  # Mistral AI, Mixtral 8x22B announcement, Apr 2024
    ("qwen3-8b", 8.2 * B),  # Qwen3-8B model card, 2025
    ("qwen3-32b", 32.8 * B),  # Qwen3-32B model card, 2025
    ("qwen3-30b-a3b", 30.5 * B),  # Qwen3-30B-A3B model card, 2025
    ("qwen3-235b-a22b", 235 * B),  # Qwen3-235B-A22B model card, 2025
    ("qwen3-coder-480b-a35b", 480 * B),  # Qwen3-Coder-480B-A35B-Instruct model card, 2025
    ("deepseek-v3", 671 * B),  # DeepSeek-V3 Technical Report (arXiv 2412.19437), Dec 2024: main model, no MTP
    ("deepseek-r1", 671 * B),  # DeepSeek-R1 model card, Jan 2025 (V3 architecture)
    ("gpt-oss-120b", 116.8 * B),  # OpenAI gpt-oss model card, Aug 2025 (116.83B)
    ("gpt-oss-20b", 20.9 * B),  # OpenAI gpt-oss model card, Aug 2025 (20.91B)
    ("seed-oss-36b", 36_151_104_512),  # Seed-OSS-36B model card, 2025, via shared/data/models/README.md
]


@pytest.mark.parametrize("zoo_id,published", PUBLISHED_TOTAL, ids=[p[0] for p in PUBLISHED_TOTAL])
def test_total_params_match_published(zoo_id, published):
    total = count_params(load_model(zoo_id)).total
    assert rel_err(total, published) < 0.01, f"{zoo_id}: {total / B:.3f}B vs published {published / B:.3f}B"


# (zoo id, published active, source). Mistral AI and Qwen include the embedding table in
# "active"; this is `active` (top-k routed + shared experts + everything dense).
PUBLISHED_ACTIVE = [
    ("mixtral-8x7b", 12.9 * B),  # Mistral AI, "Mixtral of experts", Dec 2023
    ("mixtral-8x22b", 39 * B),  # Mistral AI, Mixtral 8x22B announcement, Apr 2024
    ("qwen3-235b-a22b", 22 * B),  # Qwen3-235B-A22B model card, 2025
]


@pytest.mark.parametrize("zoo_id,published", PUBLISHED_ACTIVE, ids=[p[0] for p in PUBLISHED_ACTIVE])
def test_active_params_match_published(zoo_id, published):
    active = count_params(load_model(zoo_id)).active
    assert rel_err(active, published) < 0.01, f"{zoo_id}: {active / B:.3f}B vs published {published / B:.3f}B"


# The gpt-oss model card's active counts leave out the input embedding table (a lookup) but
# keep the unembedding: 5.13B / 3.61B exactly match `active_without_embedding`
# (with the embedding they would be 5.71B / 4.19B).
@pytest.mark.parametrize("zoo_id,published", [
    ("gpt-oss-120b", 5.1 * B),  # OpenAI gpt-oss model card, Aug 2025 (5.13B)
    ("gpt-oss-20b", 3.6 * B),  # OpenAI gpt-oss model card, Aug 2025 (3.61B)
])
def test_gpt_oss_active_params_match_model_card(zoo_id, published):
    c = count_params(load_model(zoo_id))
    assert rel_err(c.active_without_embedding, published) < 0.01
    assert c.active == c.active_without_embedding + c.embedding


def test_deepseek_v3_active_params():
    # DeepSeek-V3 Technical Report (arXiv 2412.19437), Dec 2024: "37B activated for each token".
    # The exact count is 37.55B with the embedding table and 36.63B without; only the latter
    # rounds to the published 37B, so DeepSeek (like the gpt-oss card) leaves the embedding
    # out. 37B is given to 2 significant digits (+-0.5B = 1.35%); 36.63B is 1.0% below it.
    c = count_params(load_model("deepseek-v3"))
    assert round(c.active_without_embedding / B) == 37
    assert rel_err(c.active_without_embedding, 37 * B) < 0.0135
    assert 37.5 * B < c.active < 37.6 * B  # 37,551,... with the embedding table


def test_kimi_k2_matches_model_card_rounding():
    # Kimi-K2-Instruct model card, Moonshot AI, Jul 2025: "1 trillion total parameters,
    # 32 billion activated" (DeepSeek-V3 architecture, 384 experts, 64 heads, 1 dense layer).
    c = count_params(load_model("kimi-k2"))
    assert round(c.total / 1e12) == 1
    assert round(c.active_without_embedding / B) == 32


def test_qwen3_coder_active_matches_model_card_rounding():
    # Qwen3-Coder-480B-A35B-Instruct model card, 2025: "480B in total and 35B activated".
    # The exact count is 35.47B (with embeddings, the Qwen convention): 1.4% above 35B but
    # within its rounding (+-0.5B); not in the brief's 1% list.
    c = count_params(load_model("qwen3-coder-480b-a35b"))
    assert round(c.active / B) == 35


def test_seed_oss_exact():
    # Seed-OSS-36B model card (ByteDance Seed, 2025), as recorded in shared/data/models/README.md.
    assert count_params(load_model("seed-oss-36b")).total == 36_151_104_512


def test_dense_models_active_equals_total():
    for zid in ("llama-3.1-70b", "mistral-7b", "qwen3-32b", "seed-oss-36b"):
        c = count_params(load_model(zid))
        assert c.active == c.total
        assert c.experts == c.router == c.shared_experts == 0


# --------------------------------------------------------------------------- hand-derived


def test_llama_2_7b_exact_hand_derived():
    # V=32000, H=4096, L=32, I=11008, MHA, untied, no biases:
    # embed + head: 2*32000*4096 = 262,144,000
    # per layer: attention 4*4096^2 = 67,108,864; MLP 3*4096*11008 = 135,266,304; norms 2*4096
    # 32 layers * 202,383,360 = 6,476,267,520; + final norm 4096  => 6,738,415,616
    c = count_params(load_model("llama-2-7b"))
    assert c.total == 6_738_415_616
    assert c.embedding == c.lm_head == 131_072_000
    assert c.attention == 32 * 4 * 4096 * 4096
    assert c.dense_mlp == 32 * 3 * 4096 * 11008
    assert c.norms == 65 * 4096


def test_breakdown_sums_to_total():
    for zid in zoo_ids():
        c = count_params(load_model(zid))
        assert sum(c.breakdown.values()) == c.total
        assert set(c.breakdown) == {"embedding", "lm_head", "attention", "dense_mlp", "experts",
                                    "shared_experts", "router", "norms"}


def test_kv_elements_gqa_llama_3_1_70b():
    # 8 KV heads x head_dim 128 x (K and V) = 2048 per token per layer
    a = load_model("llama-3.1-70b")
    assert a.attention == "gqa" and a.num_kv_heads == 8 and a.head_dim == 128
    assert a.kv_elements_per_token_per_layer() == 8 * 128 * 2 == 2048


def test_kv_elements_mla_deepseek_v3():
    # latent kv_lora_rank 512 + shared rope key 64 = 576 per token per layer
    a = load_model("deepseek-v3")
    assert a.attention == "mla"
    assert a.kv_elements_per_token_per_layer() == 512 + 64 == 576


def test_deepseek_v3_mla_projection_counts():
    a = load_model("deepseek-v3")
    h, heads = 7168, 128
    per_layer = (
        h * 1536 + 1536 * heads * (128 + 64)  # q_a_proj, q_b_proj
        + h * (512 + 64) + 512 * heads * (128 + 128)  # kv_a_proj_with_mqa, kv_b_proj
        + heads * 128 * h  # o_proj
    )
    c = count_params(a)
    assert c.attention == 61 * per_layer
    # norms: 2 x hidden + q_a_layernorm + kv_a_layernorm per layer, plus the final norm
    assert c.norms == 61 * (2 * h + 1536 + 512) + h
    # shared expert: 1 x 2048 wide, gated; router 256 x hidden + e_score_correction_bias
    assert a.shared_expert_intermediate_size == 2048
    assert c.shared_experts == 58 * 3 * h * 2048
    assert c.router == 58 * (256 * h + 256)
    assert a.num_mtp_layers == 1  # the MTP module exists but is not counted


def test_deepseek_v3_layer_pattern():
    a = load_model("deepseek-v3")
    assert a.layer_is_moe[:3] == (False, False, False)
    assert all(a.layer_is_moe[3:])
    assert a.num_dense_layers == 3 and a.num_moe_layers == 58
    assert a.intermediate_size == 18432 and a.moe_intermediate_size == 2048
    assert a.num_experts == 256 and a.num_experts_per_tok == 8


def test_gpt_oss_layer_pattern_and_biases():
    for zid, n in (("gpt-oss-20b", 24), ("gpt-oss-120b", 36)):
        a = load_model(zid)
        assert a.num_layers == n
        assert a.layer_windows == tuple(128 if i % 2 == 0 else None for i in range(n))
        assert all(a.layer_is_moe)
        assert a.attention_sinks and a.qkv_bias and a.o_bias and a.expert_bias and a.router_bias
        assert a.q_size == 64 * 64 != a.hidden_size
    a = load_model("gpt-oss-120b")
    c = count_params(a)
    h, e, i = 2880, 128, 2880
    assert c.per_expert == 3 * h * i + 2 * i + h  # gate_up (+bias), down (+bias)
    assert c.router == 36 * (h * e + e)
    attn = h * 4096 + 4096 + 2 * (h * 512 + 512) + 4096 * h + h + 64  # q,k,v (+bias), o (+bias), sinks
    assert c.attention == 36 * attn


def test_mistral_window_all_layers():
    a = load_model("mistral-7b")
    assert a.layer_windows == (4096,) * 32
    # Mixtral's sliding_window is null: full attention everywhere
    assert load_model("mixtral-8x7b").layer_windows == (None,) * 32


def test_seed_oss_attention_width():
    a = load_model("seed-oss-36b")
    assert a.q_size == 80 * 128 == 10240 != a.hidden_size
    assert a.qkv_bias and not a.o_bias and not a.tie_word_embeddings


def test_qwen3_qk_norm_and_moe():
    a = load_model("qwen3-32b")
    assert a.qk_norm and a.family == "qwen3"
    c = count_params(a)
    assert c.norms == 64 * (2 * 5120 + 2 * 128) + 5120
    m = load_model("qwen3-235b-a22b")
    assert m.family == "qwen3_moe" and m.num_moe_layers == 94 and m.qk_norm
    assert m.num_experts == 128 and m.num_experts_per_tok == 8 and m.shared_expert_intermediate_size == 0


def test_qwen3_moe_sparse_step_and_mlp_only_layers():
    cfg = json.loads((CONFIG_DIR / "qwen3-30b-a3b.json").read_text())
    cfg = dict(cfg, num_hidden_layers=8, decoder_sparse_step=2, mlp_only_layers=[5])
    a = arch_from_hf_config(cfg, "toy")
    assert a.layer_is_moe == (False, True, False, True, False, False, False, True)
    assert a.intermediate_size == 6144  # dense layers use intermediate_size


def test_qwen2_bias_and_tied_embeddings():
    cfg = {
        "architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "intermediate_size": 4864,
        "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
        "vocab_size": 151936, "tie_word_embeddings": True, "sliding_window": 32768,
        "use_sliding_window": False, "max_window_layers": 21,
    }
    a = arch_from_hf_config(cfg, "qwen2-0.5b")
    assert a.qkv_bias and not a.o_bias and a.layer_windows == (None,) * 24
    c = count_params(a)
    assert c.lm_head == 0  # tied: counted once
    # Qwen2.5-0.5B model card: 0.49B parameters
    assert rel_err(c.total, 0.494e9) < 0.01


def test_llama_explicit_head_dim():
    cfg = json.loads((CONFIG_DIR / "llama-3.1-8b.json").read_text())
    a = arch_from_hf_config(dict(cfg, head_dim=64), "toy")
    assert a.head_dim == 64 and a.q_size == 2048


# --------------------------------------------------------------------------- zoo and loading


def test_zoo_ids_cover_required_models():
    required = {
        "llama-2-7b", "llama-2-70b", "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b",
        "mistral-7b", "mixtral-8x7b", "mixtral-8x22b", "qwen3-8b", "qwen3-32b", "qwen3-30b-a3b",
        "qwen3-235b-a22b", "deepseek-v3", "deepseek-r1", "gpt-oss-20b", "gpt-oss-120b", "seed-oss-36b",
    }
    assert required <= set(zoo_ids())
    assert zoo_ids() == sorted(zoo_ids())


def test_zoo_names_and_case_insensitive_and_cached():
    a = load_model("Llama-3.1-70B")
    assert a.id == "llama-3.1-70b" and a.name == "Llama-3.1-70B"
    assert a.architecture == "LlamaForCausalLM" and a.family == "llama"
    assert "meta-llama/Meta-Llama-3.1-70B" in a.source
    assert load_model("llama-3.1-70b") is a
    assert load_model(a) is a


def test_hf_repo_id_resolves_to_zoo():
    assert load_model("deepseek-ai/DeepSeek-V3").id == "deepseek-v3"


def test_every_zoo_model_loads():
    for zid in zoo_ids():
        a = load_model(zid)
        assert isinstance(a, ModelArch) and a.id == zid and a.name


@needs_shared
@pytest.mark.parametrize("zoo_id", sorted(SHARED_FILE))
def test_zoo_copies_are_verbatim(zoo_id):
    assert (CONFIG_DIR / f"{zoo_id}.json").read_bytes() == (SHARED_MODELS / SHARED_FILE[zoo_id]).read_bytes()


@needs_shared
@pytest.mark.parametrize("zoo_id", sorted(SHARED_FILE))
def test_shared_configs_load_by_file_path(zoo_id):
    path = SHARED_MODELS / SHARED_FILE[zoo_id]
    a = load_model(str(path))
    z = load_model(zoo_id)
    assert a.id == path.stem and a.source == str(path.resolve())
    assert count_params(a) == count_params(z)
    assert a.layer_windows == z.layer_windows and a.layer_is_moe == z.layer_is_moe


@needs_shared
def test_shared_config_loads_by_directory(tmp_path):
    d = tmp_path / "Meta-Llama-3.1-8B"
    d.mkdir()
    shutil.copy(SHARED_MODELS / SHARED_FILE["llama-3.1-8b"], d / "config.json")
    a = load_model(d)
    assert a.id == "Meta-Llama-3.1-8B"
    assert count_params(a).total == count_params(load_model("llama-3.1-8b")).total
    assert load_model(str(d / "config.json")) is a  # same file, cached


@needs_shared
@pytest.mark.parametrize("fname", UNSUPPORTED_SHARED)
def test_unsupported_shared_configs_refused(fname):
    with pytest.raises(UnsupportedArchitectureError) as e:
        load_model(str(SHARED_MODELS / fname))
    assert "LlamaForCausalLM" in str(e.value)


def test_unsupported_architecture_lists_supported():
    with pytest.raises(UnsupportedArchitectureError) as e:
        arch_from_hf_config({"architectures": ["BertModel"], "hidden_size": 768}, "bert")
    msg = str(e.value)
    assert "BertModel" in msg
    for arch in SUPPORTED_ARCHITECTURES:
        assert arch in msg


def test_text_config_wrapper_refused():
    with pytest.raises(UnsupportedArchitectureError, match="text_config"):
        arch_from_hf_config({"architectures": ["Llama4ForConditionalGeneration"], "text_config": {}}, "l4")


def test_unknown_zoo_id_suggests_close_matches():
    with pytest.raises(UnknownNameError) as e:
        load_model("llama-3.1-7b")
    assert {"llama-3.1-8b", "llama-3.1-70b"} & set(e.value.close)
    assert "did you mean" in str(e.value)


def test_missing_required_field_names_it():
    cfg = json.loads((CONFIG_DIR / "llama-3.1-8b.json").read_text())
    del cfg["num_hidden_layers"]
    with pytest.raises(SpecError, match="num_hidden_layers"):
        arch_from_hf_config(cfg, "broken")
    cfg = json.loads((CONFIG_DIR / "deepseek-v3.json").read_text())
    del cfg["kv_lora_rank"]
    with pytest.raises(SpecError, match="kv_lora_rank"):
        arch_from_hf_config(cfg, "broken")
    cfg = json.loads((CONFIG_DIR / "gpt-oss-20b.json").read_text())
    del cfg["sliding_window"]
    with pytest.raises(SpecError, match="sliding_window"):
        arch_from_hf_config(cfg, "broken")


def test_bad_json_quotes_path(tmp_path):
    p = tmp_path / "config.json"
    p.write_text("{not json")
    with pytest.raises(SpecError) as e:
        load_model(str(p))
    assert str(p) in str(e.value)


def test_missing_path_and_empty_directory(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_model(str(tmp_path / "nope.json"))
    with pytest.raises(SpecError, match="no config.json"):
        load_model(str(tmp_path))
