"""The base of every strategy's config, its capability flags, and the ``strategy`` section's type: the class
registered under its ``name`` tag validates it (each strategy's config class lives in its folder,
``fedpeft/strategy/<name>/config.py``)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, SerializeAsAny

from fedpeft.config.plugins import STRATEGY_CONFIGS
from fedpeft.config.section import Section


class StrategySection(Section):
    """Settings of one server strategy. A subclass names its strategy (or strategies) in ``name:
    Literal[...]``, is registered with ``STRATEGY_CONFIGS.add``, and overrides the flags that differ from
    FedAvg's; the run's cross-checks read the flags (and list the strategies that have one), so no list of
    strategy names is kept anywhere else.

    Example:
        >>> from typing import Literal
        >>> class MedianStrategy(StrategySection):
        ...     single_updates: ClassVar[bool] = True
        ...     name: Literal["median_avg"] = "median_avg"
        >>> MedianStrategy().min_updates, MedianStrategy.single_updates
        (1, True)
    """

    lora_only: ClassVar[bool] = False  # aggregates LoRA factors: needs peft.method: lora
    mixed_ranks: ClassVar[bool] = True  # serves clients of mixed LoRA ranks (resources.rank_tiers)
    single_updates: ClassVar[bool] = False  # combines the clients' updates its own way, so it needs each one:
    #                                         no robust rule, client-level DP or secure aggregation around it
    secure_aggregation: ClassVar[bool] = True  # works when the server learns only the round's mean
    merges_products: ClassVar[bool] = False  # merges B A products: cannot carry DoRA's magnitudes
    keeps_b: ClassVar[bool] = False  # LoRA's B stays on each client (nothing for lora_rank compression)
    extra_state: ClassVar[bool] = False  # clients release strategy state beside the model delta
    client_half: ClassVar[bool] = False  # runs code inside every client's fit

    name: str
    server_lr: float = Field(1.0, gt=0.0, description="step size applied to the aggregated update")
    min_updates: int = Field(1, ge=1, description="a round with fewer valid updates is recorded as failed")

    @classmethod
    def flags(cls) -> dict[str, bool]:
        """Every capability flag of this strategy, by name."""
        return {k: bool(getattr(cls, k)) for k in FLAGS}


FLAGS = (
    "lora_only",
    "mixed_ranks",
    "single_updates",
    "secure_aggregation",
    "merges_products",
    "keeps_b",
    "extra_state",
    "client_half",
)

StrategyConfig = Annotated[SerializeAsAny[StrategySection], STRATEGY_CONFIGS.validator, STRATEGY_CONFIGS]


def strategies_where(flag: str, value: bool = True) -> list[str]:
    """The registered strategy names whose ``flag`` is ``value``, in registration order.

    Example:
        >>> "scaffold" in strategies_where("mixed_ranks", False)
        True
    """
    return [n for n in STRATEGY_CONFIGS.in_order() if bool(getattr(STRATEGY_CONFIGS.get(n), flag)) == value]
