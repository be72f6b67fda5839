"""Build a Hugging Face ``transformers`` model to emulate: from a zoo id or a model
directory, with random weights from its ``config.json`` (no download) or the
directory's own weights, optionally shortened to ``layers`` decoder layers.

The same (shortened) config also gives the :class:`ModelArch` of the config-based
path, so the two can be compared on exactly the same model.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..model.arch import ModelArch
from ..model.hf import arch_from_hf_config
from ..model.zoo import CONFIG_DIR, load_model

# config fields that describe a checkpoint's storage, not the architecture
_DROP = ("quantization_config", "torch_dtype", "dtype", "_name_or_path", "auto_map", "transformers_version")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")


@dataclass
class ModelSource:
    model_id: str
    config: dict                 # the (shortened) HF config dict
    directory: Path | None       # a local model directory (tokenizer, maybe weights)
    has_weights: bool
    has_tokenizer: bool


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SpecError(f"cannot read model config {str(path)!r}: {e}") from None
    if not isinstance(data, dict):
        raise SpecError(f"model config {str(path)!r} must be a JSON object")
    return data


def resolve(model: str, layers: int | None = None) -> ModelSource:
    """A zoo id, a model directory (config.json inside) or a config.json path."""
    p = Path(str(model)).expanduser()
    directory = None
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise SpecError(f"model directory {model!r} has no config.json")
        cfg, model_id, directory = _read(p / "config.json"), p.name, p
    elif p.is_file():
        cfg, model_id = _read(p), (p.parent.name if p.name == "config.json" else p.stem)
        directory = p.parent if p.name == "config.json" else None
    else:
        arch = load_model(str(model))             # raises UnknownNameError with suggestions
        cfg, model_id = _read(CONFIG_DIR / f"{arch.id}.json"), arch.id
    if layers is not None:
        cfg = shorten(cfg, layers)
    else:
        cfg = copy.deepcopy(cfg)
    has_weights = bool(directory) and any((directory / f).is_file() for f in _WEIGHT_FILES) and layers is None
    has_tok = bool(directory) and any((directory / f).is_file() for f in ("tokenizer.json", "tokenizer.model",
                                                                          "tokenizer_config.json"))
    return ModelSource(model_id=model_id, config=cfg, directory=directory, has_weights=has_weights,
                       has_tokenizer=has_tok)


def shorten(cfg: dict, layers: int) -> dict:
    """The config with only the first ``layers`` decoder layers (per-layer lists cut)."""
    if not isinstance(layers, int) or layers <= 0:
        raise SpecError(f"layers = {layers!r} must be a positive integer")
    out = copy.deepcopy(cfg)
    n = int(out.get("num_hidden_layers", layers))
    if layers >= n:
        return out
    out["num_hidden_layers"] = layers
    for key in ("layer_types", "mlp_only_layers"):
        v = out.get(key)
        if isinstance(v, list) and key == "layer_types":
            out[key] = v[:layers]
        elif isinstance(v, list):
            out[key] = [i for i in v if i < layers]
    if "max_window_layers" in out and isinstance(out["max_window_layers"], int):
        out["max_window_layers"] = min(out["max_window_layers"], layers)
    return out


def arch_of(src: ModelSource) -> ModelArch:
    """The ModelArch of exactly the model that is built (after shortening)."""
    return arch_from_hf_config(src.config, src.model_id, source="emulate", name=src.model_id)


def build(src: ModelSource, *, dtype: str = "float32", seed: int = 0, experts: str = "grouped_mm"):
    """The torch module (eval mode). Random weights (seeded, global RNG state restored)
    unless the directory holds weights and the model is not shortened."""
    import torch
    try:
        import transformers
        from transformers import AutoConfig, AutoModelForCausalLM
    except ImportError as e:  # pragma: no cover - the torch extra installs it
        raise SpecError("seedchip emulate needs transformers: pip install 'seedchip[torch]'") from e
    _check_memory(src, dtype)
    tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype)
    if tdtype is None:
        raise SpecError(f"dtype {dtype!r}: use float32, bfloat16 or float16")
    transformers.logging.set_verbosity_error()
    if src.has_weights:
        model = AutoModelForCausalLM.from_pretrained(str(src.directory), dtype=tdtype, local_files_only=True)
        return model.eval()
    cfg = {k: v for k, v in src.config.items() if k not in _DROP}
    model_type = cfg.pop("model_type", None)
    if not model_type:
        raise SpecError(f"model {src.model_id!r}: config.json has no model_type")
    try:
        config = AutoConfig.for_model(model_type, **cfg)
    except (ValueError, KeyError) as e:
        raise SpecError(f"model {src.model_id!r}: transformers cannot build model_type {model_type!r}: {e}") from None
    kwargs: dict[str, Any] = {"dtype": tdtype}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = None
        for extra in ({"attn_implementation": "sdpa", "experts_implementation": experts},
                      {"attn_implementation": "sdpa"}, {"experts_implementation": experts}, {}):
            try:
                model = AutoModelForCausalLM.from_config(copy.deepcopy(config), **kwargs, **extra)
                break
            except (ValueError, TypeError, ImportError):
                continue
        if model is None:
            model = AutoModelForCausalLM.from_config(config, **kwargs)
    return model.eval()


def _check_memory(src: ModelSource, dtype: str) -> None:
    """Refuse, with the fix, a model whose weights would not fit in this machine's memory."""
    import os
    try:
        from ..model.params import count_params
        params = count_params(arch_of(src)).total
    except Exception:  # noqa: BLE001 - an architecture the model layer does not know: try anyway
        return
    need = params * (4 if dtype == "float32" else 2)
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > 0.6 * have:
        n = int(src.config.get("num_hidden_layers", 0))
        hint = "use --layers N (fewer decoder layers)" + ("" if dtype != "float32" else " or --dtype bfloat16")
        raise SpecError(f"model {src.model_id!r} with {n} layers has {params / 1e9:.1f}B parameters: "
                        f"{need / 1e9:.0f} GB in {dtype}, more than this machine's {have / 1e9:.0f} GB allows; {hint}")


def tokenizer_for(src: ModelSource):
    if not src.has_tokenizer:
        return None
    from transformers import AutoTokenizer
    try:
        return AutoTokenizer.from_pretrained(str(src.directory), local_files_only=True)
    except Exception:  # noqa: BLE001 - a broken tokenizer falls back to token ids
        return None
