"""The model zoo: Hugging Face ``config.json`` copies shipped with the package
(``configs/<zoo-id>.json``, sources in ``configs/SOURCES.md``), or a user's own config.json."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ..errors import SpecError, UnknownNameError, one_line
from .arch import ModelArch
from .hf import arch_from_hf_config

CONFIG_DIR = Path(__file__).parent / "configs"

# zoo id -> (human name, Hugging Face repo id the config.json belongs to)
ZOO: dict[str, tuple[str, str]] = {
    "llama-2-7b": ("Llama-2-7B", "meta-llama/Llama-2-7b-hf"),
    "llama-2-70b": ("Llama-2-70B", "meta-llama/Llama-2-70b-hf"),
    "llama-3.1-8b": ("Llama-3.1-8B", "meta-llama/Meta-Llama-3.1-8B"),
    "llama-3.1-70b": ("Llama-3.1-70B", "meta-llama/Meta-Llama-3.1-70B"),
    "llama-3.1-405b": ("Llama-3.1-405B", "meta-llama/Meta-Llama-3.1-405B"),
    "mistral-7b": ("Mistral-7B-v0.1", "mistralai/Mistral-7B-v0.1"),
    "mixtral-8x7b": ("Mixtral-8x7B", "mistralai/Mixtral-8x7B-v0.1"),
    "mixtral-8x22b": ("Mixtral-8x22B", "mistralai/Mixtral-8x22B-v0.1"),
    "qwen3-8b": ("Qwen3-8B", "Qwen/Qwen3-8B"),
    "qwen3-32b": ("Qwen3-32B", "Qwen/Qwen3-32B"),
    "qwen3-30b-a3b": ("Qwen3-30B-A3B", "Qwen/Qwen3-30B-A3B"),
    "qwen3-235b-a22b": ("Qwen3-235B-A22B", "Qwen/Qwen3-235B-A22B"),
    "qwen3-coder-480b-a35b": ("Qwen3-Coder-480B-A35B", "Qwen/Qwen3-Coder-480B-A35B-Instruct"),
    "deepseek-v3": ("DeepSeek-V3", "deepseek-ai/DeepSeek-V3"),
    "deepseek-r1": ("DeepSeek-R1", "deepseek-ai/DeepSeek-R1"),
    "kimi-k2": ("Kimi-K2", "moonshotai/Kimi-K2-Instruct"),
    "gpt-oss-20b": ("gpt-oss-20b", "openai/gpt-oss-20b"),
    "gpt-oss-120b": ("gpt-oss-120b", "openai/gpt-oss-120b"),
    "seed-oss-36b": ("Seed-OSS-36B", "ByteDance-Seed/Seed-OSS-36B-Instruct"),
}

# Configs written from published figures rather than copied from the hub (see SOURCES.md).
_WRITTEN_FROM_FIGURES = {"llama-2-7b", "llama-2-70b", "mistral-7b", "seed-oss-36b"}


def zoo_ids() -> list[str]:
    """Ids of the shipped configs, sorted."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def _zoo_source(zoo_id: str) -> str:
    repo = ZOO.get(zoo_id, ("", ""))[1]
    if zoo_id in _WRITTEN_FROM_FIGURES:
        return f"{repo} config.json, written from the published architecture figures"
    if repo:
        return f"Hugging Face {repo} config.json (via the aiconfigurator 0.12.0 bundle)"
    return f"configs/{zoo_id}.json"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SpecError(f"model config {str(path)!r} is not valid JSON: {one_line(e)}") from None
    except UnicodeDecodeError:
        raise SpecError(f"model config {str(path)!r} is not a UTF-8 text file") from None
    except OSError as e:
        raise SpecError(f"cannot read model config {str(path)!r}: {e.strerror}") from None
    if not isinstance(data, dict):
        raise SpecError(f"model config {str(path)!r} must be a JSON object, got {type(data).__name__}")
    return data


@lru_cache(maxsize=64)
def _load_zoo(zoo_id: str) -> ModelArch:
    path = CONFIG_DIR / f"{zoo_id}.json"
    name = ZOO.get(zoo_id, (zoo_id, ""))[0]
    return arch_from_hf_config(_read_json(path), zoo_id, _zoo_source(zoo_id), name=name)


@lru_cache(maxsize=64)
def _load_path(path: str) -> ModelArch:
    p = Path(path)
    # a file named config.json is known by its folder's name (an HF snapshot directory)
    model_id = p.parent.name if p.name == "config.json" and p.parent.name else p.stem
    return arch_from_hf_config(_read_json(p), model_id, source=str(p), name=model_id)


def load_model(name_or_path: str | Path | ModelArch) -> ModelArch:
    """A zoo id (case-insensitive, e.g. ``llama-3.1-70b``), a path to a Hugging Face
    ``config.json``, or a path to a directory that holds one."""
    if isinstance(name_or_path, ModelArch):
        return name_or_path
    name = str(name_or_path).strip()
    p = Path(name).expanduser()
    if p.is_dir():
        f = p / "config.json"
        if not f.is_file():
            raise SpecError(f"model directory {name!r} has no config.json")
        return _load_path(str(f.resolve()))
    if p.is_file():
        return _load_path(str(p.resolve()))
    by_repo = {repo.lower(): zid for zid, (_, repo) in ZOO.items()}
    if name.lower() in by_repo:  # a Hugging Face repo id whose config the zoo ships
        return _load_zoo(by_repo[name.lower()])
    if name.endswith(".json") or "/" in name or "\\" in name:
        raise SpecError(
            f"model config {name!r} does not exist; give a zoo id ({', '.join(zoo_ids())}), "
            "a config.json path or a directory holding one"
        )
    key = name.lower()
    if not (CONFIG_DIR / f"{key}.json").is_file():
        raise UnknownNameError("model", name, zoo_ids())
    return _load_zoo(key)


def list_models() -> list[ModelArch]:
    return [load_model(i) for i in zoo_ids()]
