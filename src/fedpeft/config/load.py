"""Read a YAML config, apply dotted ``key=value`` overrides and validate it into a RunConfig."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from fedpeft.config.schema import RunConfig
from fedpeft.errors import ConfigError


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"clients.per_round=8"`` -> (["clients", "per_round"], 8); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key.path=value (e.g. rounds=10)")
    parts = key.strip().split(".")
    if any(not p for p in parts):
        raise ConfigError(f"override key {key!r} has an empty part; write e.g. clients.per_round=8")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each dotted override set (nested sections created as needed)."""
    out = _deep_copy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"override {text!r}: {where} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def load_config(
    source: str | Path | Mapping[str, Any] | RunConfig | None = None, overrides: Iterable[str] = ()
) -> RunConfig:
    """Load and validate a config from a YAML path, a mapping or a RunConfig, plus overrides.

    Example:
        >>> load_config({"rounds": 3}, ["clients.lr=0.01"]).clients.lr
        0.01
    """
    if isinstance(source, RunConfig):
        data: dict[str, Any] = source.model_dump(mode="json")
    elif source is None:
        data = {}
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        data = read_yaml(Path(source))
        data.setdefault("name", Path(source).stem)
    data = apply_overrides(data, overrides)
    return validate(data)


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; shipped configs are in configs/")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def validate(data: Mapping[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_errors(exc)) from None


def format_errors(exc: ValidationError) -> str:
    """One line per problem, each naming the dotted key, what is wrong and what is allowed."""
    lines = [f"invalid config ({exc.error_count()} problem{'s' if exc.error_count() > 1 else ''}):"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(p for p in loc if p not in ("lora", "full")) or "<top level>"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
            lines.append(f"  {key}: unknown key{hint}")
        elif err["type"] == "value_error":
            lines.append(f"  {key}: {err['msg'].removeprefix('Value error, ')}")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"  {key}: {err['msg']}{shown}")
    return "\n".join(lines)


def _allowed_keys(section_path: list[str]) -> list[str]:
    model: type[BaseModel] = RunConfig
    for part in section_path:
        if part in ("lora", "full"):
            from fedpeft.config import schema

            model = {"lora": schema.LoraMethod, "full": schema.FullMethod}[part]
            continue
        field = model.model_fields.get(part)
        ann = getattr(field, "annotation", None) if field else None
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return []
    return sorted(model.model_fields)


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}
