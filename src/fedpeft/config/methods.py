"""One config class per PEFT method, told apart by ``peft.method`` (a discriminated union)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field

from fedpeft.config.section import Section


class LoraMethod(Section):
    """Low-rank adaptation through the peft library (rsLoRA and DoRA are flags of it)."""

    method: Literal["lora"] = "lora"
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1, description="LoRA scaling numerator (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] | None = Field(
        None, description="module names to adapt; None picks peft's default for the architecture"
    )
    layers: list[int] | None = Field(
        None, description="adapt only these body blocks (0 = the lowest); None adapts every block"
    )
    use_rslora: bool = False
    use_dora: bool = False


class IA3Method(Section):
    """(IA)^3: learned scaling vectors on keys, values and feed-forward activations, through peft."""

    method: Literal["ia3"] = "ia3"
    target_modules: list[str] | None = Field(None, description="None picks peft's default for the architecture")
    feedforward_modules: list[str] | None = None


class VeraMethod(Section):
    """VeRA: frozen shared random low-rank matrices (same seed on every client), trained scaling vectors."""

    method: Literal["vera"] = "vera"
    r: int = Field(256, ge=1)
    target_modules: list[str] | None = Field(None, description="layers must share one shape (e.g. query, value)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    d_initial: float = Field(0.1, gt=0.0)


class AdapterMethod(Section):
    """Bottleneck adapters: ``houlsby`` after the attention output and the feed-forward output of every
    block, ``pfeiffer`` after the feed-forward output only. Each is down-project, activation, up-project
    (initialised to zero, so training starts from the base model) and a residual connection."""

    method: Literal["houlsby", "pfeiffer"] = "houlsby"
    reduction_factor: int = Field(16, ge=1, description="bottleneck width = hidden size / reduction_factor")
    activation: Literal["relu", "gelu", "tanh", "silu"] = "relu"
    target_modules: list[str] | None = Field(
        None, description="regexes matched against module names; None picks the architecture's default"
    )


class PromptTuningMethod(Section):
    """Soft prompt tuning (Lester et al., 2021) through peft: trained virtual token embeddings."""

    method: Literal["prompt"] = "prompt"
    num_virtual_tokens: int = Field(20, ge=1)
    init: Literal["random", "sample_vocab"] = Field(
        "sample_vocab", description="start from random vectors or from embeddings of random vocabulary tokens"
    )


class PrefixTuningMethod(Section):
    """Prefix tuning (Li and Liang, 2021) through peft: trained key/value prefixes in every layer."""

    method: Literal["prefix"] = "prefix"
    num_virtual_tokens: int = Field(20, ge=1)
    projection: bool = Field(False, description="reparameterise the prefix through a two-layer MLP")
    encoder_hidden_size: int | None = Field(None, ge=1, description="MLP width when projection is on")


class PeftLibraryMethod(Section):
    """More methods straight from the peft library (LoHa, LoKr, OFT, FourierFT, HRA, P-tuning), with
    ``options`` passed to peft's own config class (e.g. ``{r: 8, target_modules: [query, value]}``)."""

    method: Literal["loha", "lokr", "oft", "fourierft", "hra", "p_tuning"] = "loha"
    options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of peft's config class")


class BitFitMethod(Section):
    """BitFit: only the bias terms (and the new task head) train."""

    method: Literal["bitfit"] = "bitfit"


class LayerNormMethod(Section):
    """LayerNorm-only: only normalisation weights and biases (and the new task head) train."""

    method: Literal["layernorm"] = "layernorm"


class HeadMethod(Section):
    """Head-only (linear probe): only the new task head trains."""

    method: Literal["head"] = "head"


class TopLayersMethod(Section):
    """Top-k layers: the last ``k`` blocks of the body (and the task head) train; the rest stays frozen."""

    method: Literal["top_layers"] = "top_layers"
    k: int = Field(1, ge=1)


class SparseMethod(Section):
    """Sparse fine-tuning: a fixed mask of weight entries, agreed by all clients before round 1, trains;
    only the masked entries travel. ``density`` is the fraction of entries kept in each weight matrix."""

    method: Literal["sparse"] = "sparse"
    density: float = Field(0.01, gt=0.0, le=1.0)
    selection: Literal["magnitude", "random", "fisher"] = Field(
        "magnitude", description="largest |w|, uniformly at random, or largest diagonal Fisher information"
    )
    fisher_examples: int = Field(
        32, ge=1, description="fisher: examples per client whose squared gradients are summed"
    )
    fisher_clients: int | None = Field(
        10, ge=1, description="fisher: how many clients (a seeded sample) score the weights; None: all"
    )
    include_embeddings: bool = False


class FullMethod(Section):
    """Full fine-tuning: every parameter trains and travels. The baseline for comparisons."""

    method: Literal["full"] = "full"


PeftMethodConfig = Annotated[
    Union[
        LoraMethod, IA3Method, VeraMethod, AdapterMethod, PromptTuningMethod, PrefixTuningMethod,
        PeftLibraryMethod, BitFitMethod, LayerNormMethod, HeadMethod, TopLayersMethod, SparseMethod, FullMethod,
    ],
    Field(discriminator="method"),
]
