"""Hugging Face ``config.json`` -> :class:`ModelArch`.

This is the one place that knows Hugging Face field names. Each supported architecture
(``architectures[0]``) has a small translator; everything downstream reads only
:class:`ModelArch`. Anything else is refused with :class:`UnsupportedArchitectureError`
rather than guessed at, and a missing required field raises :class:`SpecError` naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from ..errors import SpecError, UnsupportedArchitectureError, validation_line
from .arch import ModelArch

_MISSING = object()


class _Cfg:
    """Typed access to one config dict, with errors that name the model and the field."""

    def __init__(self, data: dict, model_id: str):
        self.data = data
        self.model_id = model_id

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def _fail(self, key: str, what: str) -> SpecError:
        return SpecError(f"model {self.model_id!r}: config field {key!r} {what}")

    def integer(self, key: str, default: Any = _MISSING, *, positive: bool = True) -> int:
        v = self.data.get(key)
        if v is None:
            if default is _MISSING:
                raise self._fail(key, "is required but missing")
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
            raise self._fail(key, f"must be an integer, got {v!r}")
        v = int(v)
        if positive and v <= 0:
            raise self._fail(key, f"must be > 0, got {v}")
        if v < 0:
            raise self._fail(key, f"must be >= 0, got {v}")
        return v

    def flag(self, key: str, default: bool = False) -> bool:
        v = self.data.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self._fail(key, f"must be true or false, got {v!r}")
        return v

    def int_list(self, key: str) -> list[int]:
        v = self.data.get(key)
        if v is None:
            return []
        if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            raise self._fail(key, f"must be a list of layer indices, got {v!r}")
        return v

    def str_list(self, key: str) -> list[str] | None:
        v = self.data.get(key)
        if v is None:
            return None
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise self._fail(key, f"must be a list of strings, got {v!r}")
        return v


# ---------------------------------------------------------------------------- pieces


def _common(c: _Cfg) -> dict:
    """Fields every decoder-only config spells the same way (Llama naming)."""
    hidden = c.integer("hidden_size")
    heads = c.integer("num_attention_heads")
    kv_heads = c.integer("num_key_value_heads", heads)
    if c.has("head_dim"):
        head_dim = c.integer("head_dim")
    else:
        if hidden % heads:
            raise SpecError(
                f"model {c.model_id!r}: hidden_size {hidden} is not a multiple of num_attention_heads "
                f"{heads}; the config must give 'head_dim'"
            )
        head_dim = hidden // heads
    return dict(
        num_layers=c.integer("num_hidden_layers"),
        hidden_size=hidden,
        vocab_size=c.integer("vocab_size"),
        # every supported family's HF config class defaults to untied embeddings
        tie_word_embeddings=c.flag("tie_word_embeddings", False),
        max_position_embeddings=c.integer("max_position_embeddings", 0, positive=False),
        attention="mha" if kv_heads == heads else "gqa",
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        v_head_dim=head_dim,
    )


def _windows_from_layer_types(c: _Cfg, n: int) -> tuple[int | None, ...] | None:
    """``layer_types`` (sliding_attention / full_attention), if the config has it."""
    types = c.str_list("layer_types")
    if types is None:
        return None
    if len(types) != n:
        raise SpecError(
            f"model {c.model_id!r}: 'layer_types' has {len(types)} entries but num_hidden_layers is {n}"
        )
    out: list[int | None] = []
    for i, t in enumerate(types):
        if t == "full_attention":
            out.append(None)
        elif t == "sliding_attention":
            out.append(c.integer("sliding_window"))
        else:
            raise SpecError(
                f"model {c.model_id!r}: layer_types[{i}] is {t!r}; only 'full_attention' and "
                "'sliding_attention' are supported"
            )
    return tuple(out)


def _uniform_window(c: _Cfg, n: int) -> tuple[int | None, ...]:
    """Mistral / Mixtral: ``sliding_window`` applies to every layer when set and not null."""
    w = c.integer("sliding_window", None)
    return (w,) * n


def _qwen_windows(c: _Cfg, n: int) -> tuple[int | None, ...]:
    """Qwen2/Qwen3: layer_types if given; else, when use_sliding_window, layers at index
    >= max_window_layers use sliding_window (as transformers builds layer_types)."""
    lt = _windows_from_layer_types(c, n)
    if lt is not None:
        return lt
    if c.flag("use_sliding_window", False) and c.has("sliding_window"):
        w = c.integer("sliding_window")
        first = c.integer("max_window_layers", 0, positive=False)
        return tuple(w if i >= first else None for i in range(n))
    return (None,) * n


def _dense_width(c: _Cfg, layer_is_moe: tuple[bool, ...]) -> int:
    """intermediate_size of dense layers; 0 when every layer is MoE (unused then)."""
    return c.integer("intermediate_size") if not all(layer_is_moe) else 0


# ---------------------------------------------------------------------------- families


def _llama(c: _Cfg) -> dict:
    d = _common(c)
    n = d["num_layers"]
    bias = c.flag("attention_bias")  # LlamaAttention: q, k, v and o all take attention_bias
    return dict(
        d, family="llama", qkv_bias=bias, o_bias=bias,
        layer_windows=(None,) * n, layer_is_moe=(False,) * n,
        intermediate_size=c.integer("intermediate_size"), mlp_bias=c.flag("mlp_bias"),
    )


def _mistral(c: _Cfg) -> dict:
    d = _common(c)
    n = d["num_layers"]
    return dict(
        d, family="mistral",
        layer_windows=_uniform_window(c, n), layer_is_moe=(False,) * n,
        intermediate_size=c.integer("intermediate_size"),
    )


def _mixtral(c: _Cfg) -> dict:
    d = _common(c)
    n = d["num_layers"]
    return dict(
        d, family="mixtral",
        layer_windows=_uniform_window(c, n), layer_is_moe=(True,) * n,
        num_experts=c.integer("num_local_experts"),
        num_experts_per_tok=c.integer("num_experts_per_tok"),
        moe_intermediate_size=c.integer("intermediate_size"),  # Mixtral: the expert width
    )


def _qwen2(c: _Cfg) -> dict:
    d = _common(c)
    n = d["num_layers"]
    return dict(
        d, family="qwen2", qkv_bias=True, o_bias=False,  # Qwen2: q/k/v biased, o not
        layer_windows=_qwen_windows(c, n), layer_is_moe=(False,) * n,
        intermediate_size=c.integer("intermediate_size"),
    )


def _qwen3(c: _Cfg) -> dict:
    d = _common(c)
    n = d["num_layers"]
    bias = c.flag("attention_bias")
    return dict(
        d, family="qwen3", qkv_bias=bias, o_bias=bias, qk_norm=True,
        layer_windows=_qwen_windows(c, n), layer_is_moe=(False,) * n,
        intermediate_size=c.integer("intermediate_size"),
    )


def _qwen3_moe(c: _Cfg) -> dict:
    d = _common(c)
    n = d["num_layers"]
    bias = c.flag("attention_bias")
    experts = c.integer("num_experts", 0, positive=False)
    step = c.integer("decoder_sparse_step", 1)
    mlp_only = set(c.int_list("mlp_only_layers"))
    is_moe = tuple(i not in mlp_only and experts > 0 and (i + 1) % step == 0 for i in range(n))
    moe = any(is_moe)
    return dict(
        d, family="qwen3_moe", qkv_bias=bias, o_bias=bias, qk_norm=True,
        layer_windows=_qwen_windows(c, n), layer_is_moe=is_moe,
        intermediate_size=_dense_width(c, is_moe),
        num_experts=experts if moe else 0,
        num_experts_per_tok=c.integer("num_experts_per_tok") if moe else 0,
        moe_intermediate_size=c.integer("moe_intermediate_size") if moe else 0,
        # norm_topk_prob changes the routing weights, not the parameters
    )


def _deepseek_v3(c: _Cfg) -> dict:
    n = c.integer("num_hidden_layers")
    heads = c.integer("num_attention_heads")
    nope = c.integer("qk_nope_head_dim")
    rope = c.integer("qk_rope_head_dim")
    experts = c.integer("n_routed_experts", 0, positive=False)
    first_dense = c.integer("first_k_dense_replace", 0, positive=False)
    freq = c.integer("moe_layer_freq", 1)
    is_moe = tuple(experts > 0 and i >= first_dense and i % freq == 0 for i in range(n))
    moe = any(is_moe)
    moe_width = c.integer("moe_intermediate_size") if moe else 0
    shared = c.integer("n_shared_experts", 0, positive=False) if moe else 0
    bias = c.flag("attention_bias")
    return dict(
        family="deepseek_v3",
        num_layers=n,
        hidden_size=c.integer("hidden_size"),
        vocab_size=c.integer("vocab_size"),
        tie_word_embeddings=c.flag("tie_word_embeddings", False),
        max_position_embeddings=c.integer("max_position_embeddings", 0, positive=False),
        attention="mla",
        num_heads=heads,
        num_kv_heads=heads,  # MLA decompresses the latent into per-head K and V
        head_dim=nope + rope,
        v_head_dim=c.integer("v_head_dim"),
        # DeepseekV3Attention: attention_bias applies to q_a_proj, kv_a_proj_with_mqa and o_proj
        qkv_bias=bias, o_bias=bias,
        q_lora_rank=c.integer("q_lora_rank", None),
        kv_lora_rank=c.integer("kv_lora_rank"),
        qk_nope_head_dim=nope,
        qk_rope_head_dim=rope,
        layer_windows=(None,) * n,
        layer_is_moe=is_moe,
        intermediate_size=_dense_width(c, is_moe),
        num_experts=experts if moe else 0,
        num_experts_per_tok=c.integer("num_experts_per_tok") if moe else 0,
        moe_intermediate_size=moe_width,
        shared_expert_intermediate_size=shared * moe_width,
        # the gate's e_score_correction_bias (one per expert) exists with topk_method noaux_tc
        router_bias=moe and c.data.get("topk_method") == "noaux_tc",
        # the multi-token-prediction module(s) ship with the checkpoint but are not the model
        num_mtp_layers=c.integer("num_nextn_predict_layers", 0, positive=False),
    )


def _gpt_oss(c: _Cfg) -> dict:
    d = _common(c)
    n = d["num_layers"]
    windows = _windows_from_layer_types(c, n)
    if windows is None:
        raise SpecError(f"model {c.model_id!r}: config field 'layer_types' is required but missing")
    bias = c.flag("attention_bias")
    k = c.integer("num_experts_per_tok", None) or c.integer("experts_per_token")
    return dict(
        d, family="gpt_oss", qkv_bias=bias, o_bias=bias, attention_sinks=True,
        layer_windows=windows, layer_is_moe=(True,) * n,
        num_experts=c.integer("num_local_experts"),
        num_experts_per_tok=k,
        moe_intermediate_size=c.integer("intermediate_size"),  # gpt-oss: the expert width
        expert_bias=True, router_bias=True,
    )


def _seed_oss(c: _Cfg) -> dict:
    d = _common(c)
    n = d["num_layers"]
    return dict(
        d, family="seed_oss",
        qkv_bias=c.flag("attention_bias"), o_bias=c.flag("attention_out_bias"),
        layer_windows=(None,) * n, layer_is_moe=(False,) * n,
        intermediate_size=c.integer("intermediate_size"), mlp_bias=c.flag("mlp_bias"),
    )


_TRANSLATORS: dict[str, Callable[[_Cfg], dict]] = {
    "LlamaForCausalLM": _llama,
    "MistralForCausalLM": _mistral,
    "MixtralForCausalLM": _mixtral,
    "Qwen2ForCausalLM": _qwen2,
    "Qwen3ForCausalLM": _qwen3,
    "Qwen3MoeForCausalLM": _qwen3_moe,
    "DeepseekV3ForCausalLM": _deepseek_v3,
    "GptOssForCausalLM": _gpt_oss,
    "SeedOssForCausalLM": _seed_oss,
}

SUPPORTED_ARCHITECTURES: tuple[str, ...] = tuple(_TRANSLATORS)

# For configs without an "architectures" list.
_BY_MODEL_TYPE = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "mixtral": "MixtralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "qwen3_moe": "Qwen3MoeForCausalLM",
    "deepseek_v3": "DeepseekV3ForCausalLM",
    "gpt_oss": "GptOssForCausalLM",
    "seed_oss": "SeedOssForCausalLM",
}


def _architecture(config: dict, model_id: str) -> str:
    archs = config.get("architectures")
    if archs:
        if not isinstance(archs, list) or not isinstance(archs[0], str):
            raise SpecError(f"model {model_id!r}: config field 'architectures' must be a list of names, got {archs!r}")
        return archs[0]
    mt = config.get("model_type")
    if isinstance(mt, str) and mt in _BY_MODEL_TYPE:
        return _BY_MODEL_TYPE[mt]
    raise SpecError(
        f"model {model_id!r}: config field 'architectures' is required but missing "
        f"(and model_type {mt!r} does not name a supported architecture)"
    )


def arch_from_hf_config(config: dict, model_id: str, source: str = "", *, name: str | None = None) -> ModelArch:
    """Translate a Hugging Face ``config.json`` (already parsed) into a :class:`ModelArch`."""
    if not isinstance(config, dict):
        raise SpecError(f"model {model_id!r}: a config.json must be a JSON object, got {type(config).__name__}")
    arch = _architecture(config, model_id)
    translate = _TRANSLATORS.get(arch)
    if translate is None:
        why = ""
        if "text_config" in config:
            why = " (multimodal wrappers with a nested text_config are not supported)"
        raise UnsupportedArchitectureError(
            f"model {model_id!r}: architecture {arch!r} is not supported{why}; "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    fields = translate(_Cfg(config, model_id))
    try:
        return ModelArch(
            id=model_id, name=name or model_id, architecture=arch, source=source, **fields
        )
    except ValidationError as e:
        raise SpecError(validation_line(e, f"model {model_id!r}")) from None
