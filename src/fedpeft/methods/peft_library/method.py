"""Methods the peft library gives for free, each registered under its own name: LoHa, LoKr, OFT,
FourierFT, HRA (reparameterised) and P-tuning (additive). ``peft.options`` goes to peft's config class."""

from __future__ import annotations

import dataclasses

from peft import PeftType
from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
from torch import nn

from fedpeft.errors import ModelError
from fedpeft.methods.peft_common import PEFT_TASKS, default_targets, load_peft, refuse_without_tokens, save_peft, wrap
from fedpeft.methods.peft_library.config import PeftLibraryMethod
from fedpeft.methods.registry import Family, MethodSpec, register

LIBRARY: dict[str, tuple[PeftType, Family]] = {
    "loha": (PeftType.LOHA, "reparameterised"),
    "lokr": (PeftType.LOKR, "reparameterised"),
    "oft": (PeftType.OFT, "reparameterised"),
    "fourierft": (PeftType.FOURIERFT, "reparameterised"),
    "hra": (PeftType.HRA, "reparameterised"),
    "p_tuning": (PeftType.P_TUNING, "additive"),
}


def apply_library(model: nn.Module, cfg: PeftLibraryMethod, task: str) -> nn.Module:
    peft_type, _family = LIBRARY[cfg.method]
    config_cls = PEFT_TYPE_TO_CONFIG_MAPPING[peft_type]
    allowed = {f.name for f in dataclasses.fields(config_cls)}
    options = dict(cfg.options)
    if peft_type == PeftType.P_TUNING:
        refuse_without_tokens(task, "P-tuning")
        options.setdefault("num_virtual_tokens", 20)
        options.setdefault("encoder_hidden_size", int(getattr(model.config, "hidden_size", 0)))
    elif "target_modules" in allowed:
        targets = default_targets(model, task, options.get("target_modules"))
        if targets is not None:
            options["target_modules"] = targets
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ModelError(
            f"peft.options {unknown} are not options of peft's {config_cls.__name__}; allowed: "
            f"{', '.join(sorted(allowed - {'peft_type', 'task_type', 'base_model_name_or_path', 'revision'}))}"
        )
    return wrap(model, config_cls(task_type=PEFT_TASKS[task], **options), cfg.method)


for _name, (_type, _family) in LIBRARY.items():
    register(
        MethodSpec(
            _name,
            _family,
            apply_library,
            save_peft,
            load_peft,
            summary=f"{_type.value} through the peft library (options: peft.options)",
        )
    )
