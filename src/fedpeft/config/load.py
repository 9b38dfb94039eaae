"""Read a YAML config, apply dotted ``key=value`` overrides and validate it into a RunConfig."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from fedpeft.config.plugins import PluginConfigs, registry_of
from fedpeft.config.schema import RunConfig
from fedpeft.errors import ConfigError

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"clients.per_round=8"`` -> (["clients", "per_round"], 8); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key.path=value (e.g. rounds=10)")
    parts = key.strip().split(".")
    if not all(_KEY.match(p) for p in parts):
        raise ConfigError(f"override key {key!r} is not a dotted path of names; write e.g. clients.per_round=8")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    return parts, _number(value)


def _number(value: Any) -> Any:
    """YAML 1.1 reads '1e-3' as a string; users mean a number."""
    if isinstance(value, str):
        try:
            return float(value) if _FLOAT.match(value) else value
        except ValueError:
            return value
    return value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each dotted override set (nested sections created as needed).

    Changing a section's tag (``peft.method=full`` on a LoRA section) starts that section afresh, since the
    old method's keys mean nothing to the new one.
    """
    out = _deep_copy(data)
    for text in overrides:
        parts, value = parse_override(text)
        if _is_tag_key(parts) and isinstance(out.get(parts[0]), dict):
            if out[parts[0]].get(parts[1]) != value:
                out[parts[0]] = {}
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
    return validate(raw_config(source, overrides))


def raw_config(
    source: str | Path | Mapping[str, Any] | RunConfig | None = None, overrides: Iterable[str] = ()
) -> dict[str, Any]:
    """The config as a plain mapping with the overrides applied, not yet validated (cheap: validation
    imports the plug-ins)."""
    if isinstance(source, RunConfig):
        data: dict[str, Any] = source.model_dump(mode="json")
    elif source is None:
        data = {}
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        data = read_yaml(Path(source))
        data.setdefault("name", Path(source).stem)
    return apply_overrides(data, overrides)


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
    return _numbers_deep(data)


def _numbers_deep(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _numbers_deep(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_numbers_deep(v) for v in data]
    return _number(data)


def validate(data: Mapping[str, Any]) -> RunConfig:
    data = dict(data)
    for name in RunConfig.model_fields:  # a plug-in section without its tag takes the default's
        tag, default = _section_tag(name)
        if tag and isinstance(data.get(name), Mapping) and tag not in data[name]:
            data[name] = {tag: default, **data[name]}
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, data)) from None


def format_errors(exc: ValidationError, data: Mapping[str, Any] | None = None) -> str:
    """One line per problem, each naming the dotted key, what is wrong and what is allowed (``data``, the
    validated input, tells which plug-in's keys a section allows)."""
    lines = [f"invalid config ({exc.error_count()} problem{'s' if exc.error_count() > 1 else ''}):"]
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc) or "<top level>"
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1], data or {})
            hint = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
            lines.append(f"  {key}: unknown key{hint}")
        elif err["type"] == "value_error":
            lines.append(f"  {key}: {err['msg'].removeprefix('Value error, ')}")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"  {key}: {err['msg']}{shown}")
    return "\n".join(lines)


def _allowed_keys(section_path: list[str], data: Any) -> list[str]:
    """Field names of the section at ``section_path``; a plug-in section's follow its tag in ``data``."""
    model: type[BaseModel] = RunConfig
    registry: PluginConfigs[Any] | None = None
    for part in section_path:
        data = _child(data, part)
        if registry is not None and part.isdigit():  # an item of a list of plug-ins
            model, registry = _plugin_class(registry, data), None
            continue
        field = model.model_fields.get(part)
        ann = field.annotation if field else None
        found = registry_of(ann, field.metadata) if field else None
        if found is not None and get_origin(ann) is list:
            registry = found  # the next part is the item's index
        elif found is not None:
            model = _plugin_class(found, data)
        elif isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return []
    return sorted(model.model_fields)


def _child(data: Any, part: str) -> Any:
    if isinstance(data, Mapping):
        return data.get(part)
    if isinstance(data, list) and part.isdigit() and int(part) < len(data):
        return data[int(part)]
    return None


def _plugin_class(registry: PluginConfigs[Any], data: Any) -> type[BaseModel]:
    try:
        return registry.class_for(data if isinstance(data, dict) else {})
    except ValueError:
        return BaseModel


def _section_tag(name: str) -> tuple[str | None, Any]:
    """(tag key, default tag) of a top-level plug-in or union section, or (None, None)."""
    field = RunConfig.model_fields.get(name)
    if field is None:
        return None, None
    registry = registry_of(field.annotation, field.metadata)
    return (registry.tag, registry.default) if registry is not None else (None, None)


def _is_tag_key(parts: list[str]) -> bool:
    """True for a top-level plug-in section's tag key, e.g. ["peft", "method"]."""
    return len(parts) == 2 and _section_tag(parts[0])[0] == parts[1]


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def for_deployment(cfg: RunConfig) -> RunConfig:
    """``cfg`` as a deployment runs it: DP noise from OS entropy unless ``privacy.secure_noise`` says otherwise
    (in a deployment the server sends clients the run's seed, so seeded noise would be known to it).

    Example:
        >>> for_deployment(RunConfig()).privacy.secret_noise, RunConfig().privacy.secret_noise
        (True, False)
    """
    if cfg.privacy.secure_noise is not None:
        return cfg
    return validate(
        {**cfg.model_dump(mode="json"), "privacy": {**cfg.privacy.model_dump(mode="json"), "secure_noise": True}}
    )
