"""The run's cross-checks: settings that are valid alone but not together, refused with the fix.

Facts about plug-ins come from the flags on their registered config classes (``StrategySection``'s
``lora_only``, ``single_updates``, ``secure_aggregation``...), and the alternatives a message offers are
listed from the registries, so a new plug-in is checked (and offered) without editing this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedpeft.config.strategies import strategies_where

if TYPE_CHECKING:
    from fedpeft.config.schema import RunConfig


def check_run(cfg: RunConfig) -> None:
    """Raise ValueError naming the first inconsistent combination in ``cfg`` and how to fix it.

    Example:
        >>> from fedpeft.config.schema import RunConfig
        >>> RunConfig.model_validate({"strategy": {"name": "flora"}, "peft": {"method": "ia3"}})
        Traceback (most recent call last):
        ...
        pydantic_core._pydantic_core.ValidationError: 1 validation error for RunConfig
          Value error, strategy.name=flora aggregates LoRA factors: set peft.method: lora ...
    """
    checks = (_evaluation_and_clock, _precision, _workers, _cohort, _strategy, _privacy, _compression, _ranks, _head)
    for check in checks:
        check(cfg)
    if cfg.privacy.secure_aggregation.enabled:
        _secure_aggregation(cfg)


def _evaluation_and_clock(cfg: RunConfig) -> None:
    if cfg.eval.per_client and cfg.data.local_test_fraction == 0.0:
        raise ValueError(
            "eval.per_client needs held-out examples on each client: set data.local_test_fraction (for example 0.2)"
        )
    if cfg.strategy.min_updates > cfg.clients.per_round:
        raise ValueError(
            f"strategy.min_updates ({cfg.strategy.min_updates}) exceeds clients.per_round "
            f"({cfg.clients.per_round}): no round could succeed"
        )
    if cfg.eval.finetune_steps and not cfg.eval.per_client:
        raise ValueError("eval.finetune_steps scores clients' held-out examples: set eval.per_client: true")
    if cfg.participation.deadline_s is not None and not cfg.resources.speed_tiers:
        raise ValueError(
            "participation.deadline_s needs a simulated clock: set resources.speed_tiers, e.g. {20: 0.5, 100: 0.5}"
        )


COHORT_REFUSED = {  # methods whose trainable tensors are not a per-example module input
    "prefix": "prefix tuning's trainable tensors are the attention's past keys and values",
    "prompt": "prompt tuning's trainable tensors are input embeddings",
    "p_tuning": "p-tuning's trainable tensors are input embeddings",
    "full": "full fine-tuning trains the whole base, so there is no shared frozen base",
    "sparse": "sparse fine-tuning masks the gradients of whole base weights",
    **{
        m: f"peft's {m} layers build their weights with steps torch.func.vmap cannot batch (branches on tensor "
        "values, in-place index writes)"
        for m in ("loha", "lokr", "oft", "fourierft")
    },
}


def _workers(cfg: RunConfig) -> None:
    if (cfg.clients.workers or 1) > 1 and cfg.model.cache_frozen_prefix:
        raise ValueError(
            f"clients.workers={cfg.clients.workers}: model.cache_frozen_prefix keeps its cache in one process; "
            "set clients.workers: 1 (the cache saves more than a second process here)"
        )


def _cohort(cfg: RunConfig) -> None:
    c = cfg.clients
    if c.cohort == 1:
        return
    why = COHORT_REFUSED.get(cfg.peft.method)
    if cfg.privacy.dp_sgd.enabled:
        why = "DP-SGD clips each example's gradient within one client's pass"
    if cfg.model.cache_frozen_prefix:
        why = "model.cache_frozen_prefix serves one client's batch from its cache"
    if cfg.precision == "fp16":
        why = "precision=fp16 needs a gradient scaler per client (use bf16 or fp32)"
    if c.workers is not None and c.workers > 1:
        why = "clients.workers runs one client per process"
    if why:
        raise ValueError(f"clients.cohort={c.cohort}: {why}; set clients.cohort: 1")


def _precision(cfg: RunConfig) -> None:
    if cfg.precision == "fp16" and cfg.privacy.dp_sgd.enabled:
        raise ValueError(
            "precision=fp16 scales the loss, and DP-SGD clips each example's gradient before any unscaling: "
            "use precision=bf16 or fp32 with privacy.dp_sgd"
        )
    half = cfg.model.base_dtype
    if half in ("bf16", "fp16"):
        if cfg.precision != half:
            raise ValueError(
                f"model.base_dtype={half}: the half-precision base computes under autocast in the same type; "
                f"set precision={half} (or model.base_dtype: fp32)"
            )
        why = half_base_refused(cfg)
        if why:
            raise ValueError(f"model.base_dtype={half}: {why}; set model.base_dtype: fp32")


def half_base_refused(cfg: RunConfig) -> str | None:
    """Why the frozen base must stay in fp32 for this run, or None."""
    if cfg.strategy.name == "flora":
        return "FLoRA merges the aggregated factors into the base weights, which half precision would round"
    if cfg.privacy.dp_sgd.enabled:
        return "DP-SGD's per-example gradient path is checked and run in fp32"
    if cfg.model.cache_frozen_prefix:
        return "model.cache_frozen_prefix computes the frozen blocks outside autocast"
    return None


def _strategy(cfg: RunConfig) -> None:
    s, lora = cfg.strategy, cfg.peft.method == "lora"
    if s.lora_only and not lora:
        raise ValueError(f"strategy.name={s.name} aggregates LoRA factors: set peft.method: lora")
    if s.merges_products and lora and getattr(cfg.peft, "use_dora"):
        raise ValueError(
            f"strategy.name={s.name} merges B A products; it cannot carry DoRA's magnitudes: set peft.use_dora: false"
        )
    if cfg.robustness.aggregator != "mean" and s.single_updates:
        raise ValueError(
            f"robustness.aggregator={cfg.robustness.aggregator}: strategy.name={s.name} combines LoRA "
            f"factors its own way; use {_either(strategies_where('single_updates', False))} with a "
            "robust aggregator, or robustness.norm_bound"
        )


def _privacy(cfg: RunConfig) -> None:
    p, r = cfg.privacy, cfg.robustness
    if p.dp_sgd.enabled and cfg.clients.loss != "cross_entropy":
        raise ValueError(
            f"clients.loss={cfg.clients.loss} shifts every example's logits by the client's label counts, so one "
            "example changes the others' gradients and DP-SGD's per-example bound no longer holds: set "
            "clients.loss: cross_entropy (client-level DP, privacy.client_dp, covers the counts)"
        )
    if p.client_dp != "off" and (r.aggregator != "mean" or r.norm_bound):
        raise ValueError(
            "privacy.client_dp clips and averages updates itself: drop robustness.aggregator and "
            "robustness.norm_bound (privacy.clip is the norm bound)"
        )
    if p.client_dp != "off" and cfg.strategy.single_updates:
        raise ValueError(
            f"privacy.client_dp: strategy.name={cfg.strategy.name} combines LoRA factors its own way; "
            f"use {_either(strategies_where('single_updates', False))}"
        )
    if p.client_dp != "off" and cfg.participation.stragglers == "stale":
        raise ValueError(
            "privacy.client_dp: a late update would count in a later round than the one its client was sampled "
            "for, which the accountant does not cover: use participation.stragglers: drop"
        )
    if p.dp_sgd.enabled and cfg.peft.method == "sparse":
        raise ValueError(
            "privacy.dp_sgd: peft.method=sparse picks its mask from clients' raw gradients, outside "
            "DP-SGD; pick lora, ia3, bitfit or another method with a fixed parameter set"
        )


def _head(cfg: RunConfig) -> None:
    if cfg.model.head_init == "none":
        return
    p = cfg.privacy
    if p.client_dp != "off" or p.dp_sgd.enabled or p.secure_aggregation.enabled:
        raise ValueError(
            f"model.head_init={cfg.model.head_init}: each client sends its feature sums once, in the clear, "
            "outside the privacy settings' accounting and secure aggregation: set model.head_init: none"
        )


def _compression(cfg: RunConfig) -> None:
    for t in cfg.compression.uplink:
        if t.name != "lora_rank":
            continue
        if cfg.peft.method != "lora":
            raise ValueError("compression.uplink: lora_rank prunes LoRA rank components: set peft.method: lora")
        if cfg.strategy.keeps_b:
            raise ValueError(
                f"compression.uplink: lora_rank needs B, and {cfg.strategy.name} keeps B on the client: "
                "drop lora_rank or pick another strategy"
            )
        keep, rank = getattr(t, "keep"), getattr(cfg.peft, "r")
        if keep >= rank:
            raise ValueError(
                f"compression.uplink: lora_rank.keep ({keep}) must be below peft.r ({rank}) to prune anything"
            )


def _ranks(cfg: RunConfig) -> None:
    ranks = cfg.resources.rank_tiers
    if not ranks:
        return
    if cfg.peft.method != "lora":
        raise ValueError("resources.rank_tiers gives clients LoRA ranks: set peft.method: lora")
    rank = getattr(cfg.peft, "r")
    if max(ranks) != rank:
        raise ValueError(
            f"resources.rank_tiers: the largest tier ({max(ranks)}) must equal peft.r ({rank}), the "
            f"rank the shared model is built with: set peft.r: {max(ranks)}"
        )


def _secure_aggregation(cfg: RunConfig) -> None:
    """What secure aggregation cannot serve: the server never sees one update, only the round's mean."""
    why = "privacy.secure_aggregation: the server only learns the round's mean, so"
    r = cfg.robustness
    if not cfg.strategy.secure_aggregation or cfg.strategy.single_updates:
        raise ValueError(
            f"{why} strategy.name={cfg.strategy.name} (which needs each client's update) cannot run; "
            f"pick one of {', '.join(_secure_strategies())}"
        )
    if r.aggregator != "mean" or r.norm_bound or r.max_update_norm:
        raise ValueError(
            f"{why} robust aggregators and norm checks cannot see single updates: drop "
            "robustness.aggregator, robustness.norm_bound and robustness.max_update_norm"
        )
    if cfg.compression.uplink:
        raise ValueError(f"{why} clients send fixed-point integers of the whole update: drop compression.uplink")
    if cfg.resources.rank_tiers:
        raise ValueError(f"{why} every client must send the same tensors: drop resources.rank_tiers")
    if cfg.participation.stragglers == "stale":
        raise ValueError(f"{why} a late update cannot join a later round's masks: use participation.stragglers: drop")
    if cfg.privacy.adaptive_clip:
        raise ValueError(f"{why} it cannot count clients below the clip: use a fixed privacy.clip")
    if cfg.privacy.client_dp == "central" and cfg.privacy.sampling == "poisson":
        raise ValueError(
            f"{why} a round needs enough clients to unmask; Poisson sampling can draw fewer, and a round that "
            "fails for being too small would change the DP sensitivity: set privacy.sampling: fixed"
        )
    if cfg.clients.per_round < 2:
        raise ValueError(f"{why} it needs clients.per_round >= 2 (with one client the mean is its update)")


def _secure_strategies() -> list[str]:
    single = set(strategies_where("single_updates"))
    return [n for n in strategies_where("secure_aggregation") if n not in single]


def _either(names: list[str]) -> str:
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)
