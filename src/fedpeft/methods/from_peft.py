"""A peft config object (``peft.LoraConfig``, ``IA3Config``, ``PrefixTuningConfig``, ``LoHaConfig``...) as
fedpeft's ``peft`` config section, so a Python caller can hand in what they already use with peft.

Example:
    >>> from peft import LoraConfig
    >>> peft_section = section(LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"]))
    >>> peft_section["method"], peft_section["alpha"], peft_section["target_modules"]
    ('lora', 8, ['query', 'value'])
"""

from __future__ import annotations

from typing import Any

from fedpeft.errors import ConfigError

# peft config class -> fedpeft's peft_library method tag (options passed to peft's class as they are)
LIBRARY = {
    "LoHaConfig": "loha",
    "LoKrConfig": "lokr",
    "OFTConfig": "oft",
    "FourierFTConfig": "fourierft",
    "HRAConfig": "hra",
    "PromptEncoderConfig": "p_tuning",
}
NOT_OPTIONS = {"peft_type", "task_type", "base_model_name_or_path", "revision", "inference_mode", "auto_mapping"}


def _targets(value: Any) -> list[str] | str | None:
    if value is None or isinstance(value, str):
        return value
    return sorted(value)


# the options each mapped class carries over; any other option set away from peft's default is refused
MAPPED = {
    "LoraConfig": {"r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora", "use_dora"}
    | {"layers_to_transform"},
    "IA3Config": {"target_modules", "feedforward_modules"},
    "PrefixTuningConfig": {"num_virtual_tokens", "prefix_projection", "encoder_hidden_size"},
    "PromptTuningConfig": {"num_virtual_tokens"},
}
# set by peft itself (from the model, or by its task type), not by the caller
DERIVED = NOT_OPTIONS | {"modules_to_save", "token_dim", "num_transformer_submodules", "num_attention_heads"}
DERIVED |= {"num_layers", "tokenizer_name_or_path", "tokenizer_kwargs", "peft_version"}


def _refuse_unmapped(config: Any) -> None:
    kind = type(config).__name__
    default, given = type(config)().to_dict(), config.to_dict()
    lost = sorted(k for k in given if k not in MAPPED[kind] | DERIVED and given[k] != default.get(k))
    if lost:
        raise ConfigError(
            f"peft_config: fedpeft's {kind} equivalent has no {', '.join(lost)}; leave them at peft's defaults, "
            "or give the run's peft section instead (`fedpeft validate --show` lists its keys)"
        )


def section(config: Any) -> dict[str, Any]:
    """The ``peft`` section equivalent to ``config``; a ConfigError for a class fedpeft does not map, or an
    option it would drop."""
    kind = type(config).__name__
    if kind in MAPPED:
        _refuse_unmapped(config)
    if kind == "LoraConfig":
        out = {
            "method": "lora",
            "r": config.r,
            "alpha": config.lora_alpha,
            "dropout": config.lora_dropout,
            "target_modules": _targets(config.target_modules),
            "use_rslora": config.use_rslora,
            "use_dora": config.use_dora,
        }
        layers = config.layers_to_transform
        if layers is not None:
            out["layers"] = [layers] if isinstance(layers, int) else list(layers)
        return out
    if kind == "IA3Config":
        return {
            "method": "ia3",
            "target_modules": _targets(config.target_modules),
            "feedforward_modules": _targets(config.feedforward_modules),
        }
    if kind == "PrefixTuningConfig":
        return {
            "method": "prefix",
            "num_virtual_tokens": config.num_virtual_tokens,
            "projection": bool(config.prefix_projection),
            "encoder_hidden_size": config.encoder_hidden_size if config.prefix_projection else None,
        }
    if kind == "PromptTuningConfig":
        return {"method": "prompt", "num_virtual_tokens": config.num_virtual_tokens}
    if kind in LIBRARY:
        options = {
            k: sorted(v) if isinstance(v, set) else v for k, v in config.to_dict().items() if k not in NOT_OPTIONS
        }
        return {"method": LIBRARY[kind], "options": options}
    supported = ["LoraConfig", "IA3Config", "PrefixTuningConfig", "PromptTuningConfig", *LIBRARY]
    raise ConfigError(
        f"peft_config: a {kind} has no fedpeft equivalent; give one of {', '.join(supported)}, or the config's "
        "peft section (`fedpeft methods` lists them)"
    )
