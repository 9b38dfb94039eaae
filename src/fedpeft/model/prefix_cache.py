"""Frozen-prefix activation caching: when everything that trains sits above body block L, the output of
blocks 0..L-1 depends only on an example's tokens, so it is computed once and reused in every round.

The cache is keyed by the example's token ids (without padding), so it needs no example ids from the data
pipeline and serves training, evaluation and every client alike. The first L blocks' ``forward`` is
replaced (the modules and their parameters stay where they are, so saving and counting are unchanged):
blocks 0..L-2 pass their input through and block L-1 returns the cached states. A missing example is
computed by the real blocks in eval mode, which means the frozen prefix runs without dropout (its output
must be a function of the tokens to be cached at all). Padding positions get zeros: attention masks them and
pooling ignores them, so results are unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from fedpeft.errors import ModelError
from fedpeft.model.anatomy import HEAD_MODULES, body_blocks
from fedpeft.model.state import nbytes


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the prefix output is known."""


def frozen_prefix_depth(model: nn.Module) -> int:
    """How many body blocks sit below every trainable tensor; ModelError when nothing below can be cached.

    Example:
        >>> from fedpeft.model.mobilenet import MobileNetV2
        >>> m = MobileNetV2(width_mult=0.25)
        >>> for n, p in m.named_parameters():
        ...     _ = p.requires_grad_(n.startswith("features.18"))
        >>> frozen_prefix_depth(m)
        18
    """
    container, blocks = body_blocks(model)
    depth = len(blocks)
    for i, block in enumerate(blocks):
        if any(p.requires_grad for p in block.parameters()):
            depth = i
            break
    body = {f"{container}.{n}" for n, _ in _named_blocks_params(blocks)}
    for name, p in model.named_parameters():
        if p.requires_grad and name not in body and not set(name.split(".")) & {*HEAD_MODULES, "pooler"}:
            raise ModelError(
                f"model.cache_frozen_prefix: {name} trains and is not in the body or the head, so no layer's input "
                "is fixed; turn caching off, or train only upper layers (top_layers, head, LoRA with peft.layers)"
            )
    if depth == 0:
        raise ModelError(
            "model.cache_frozen_prefix: the lowest body block has trainable tensors, so there is nothing to cache; "
            "turn caching off, or train only upper layers (top_layers, head, LoRA with peft.layers)"
        )
    return depth


def _named_blocks_params(blocks: list[nn.Module]) -> list[tuple[str, nn.Parameter]]:
    return [(f"{i}.{n}", p) for i, b in enumerate(blocks) for n, p in b.named_parameters()]


class PrefixCache:
    """Installs itself on ``model``: body blocks below ``depth`` are served from a per-example cache.

    Example:
        >>> cache = PrefixCache(model, frozen_prefix_depth(model))  # doctest: +SKIP
        >>> model(**batch)  # computes and stores blocks 0..depth-1; later calls reuse them  # doctest: +SKIP
    """

    def __init__(self, model: nn.Module, depth: int) -> None:
        self.model = model
        self.blocks = body_blocks(model)[1][:depth]
        self.depth = depth
        self.store: dict[bytes, torch.Tensor] = {}
        self.tuple_output = False
        self.hits = self.misses = 0
        self._inputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self._computing = False
        model.register_forward_pre_hook(self._capture, with_kwargs=True)
        model.prefix_cache = self  # type: ignore[assignment]  # the trainer leaves cache fills out of its FLOPs
        self._install()

    def _install(self) -> None:
        for block in self.blocks[:-1]:
            block.forward = self._passthrough
        self.blocks[-1].forward = self._from_cache

    def _uninstall(self) -> None:
        for block in self.blocks:
            del block.forward

    def _passthrough(self, hidden: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return (hidden,) if self.tuple_output else hidden

    def _from_cache(self, hidden: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        states = self.batch_states(hidden)
        return (states,) if self.tuple_output else states

    def _capture(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._computing:
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            raise ModelError("model.cache_frozen_prefix needs token ids (input_ids) to key the cache")
        mask = kwargs.get("attention_mask")
        self._inputs = (ids, torch.ones_like(ids) if mask is None else mask)

    @staticmethod
    def _key(row: torch.Tensor, length: int) -> bytes:
        return row[:length].cpu().numpy().tobytes()

    def batch_states(self, hidden: torch.Tensor) -> torch.Tensor:
        """The prefix output for the captured batch, padded with zeros to ``hidden``'s length."""
        assert self._inputs is not None, "the model was called without going through its forward"
        ids, mask = self._inputs
        ids = ids.cpu()  # (keys are read on the CPU: one copy per batch)
        lengths = [int(n) for n in mask.sum(1)]
        keys = [self._key(ids[j], lengths[j]) for j in range(len(lengths))]
        missing = [j for j, k in enumerate(keys) if k not in self.store]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            self._compute(
                ids[missing].to(mask.device), mask[missing], [keys[j] for j in missing], [lengths[j] for j in missing]
            )
        out = hidden.new_zeros(hidden.shape)
        for j, k in enumerate(keys):
            out[j, : lengths[j]] = self.store[k]
        return out

    @torch.no_grad()
    def _compute(self, ids: torch.Tensor, mask: torch.Tensor, keys: list[bytes], lengths: list[int]) -> None:
        """Run the real model in eval mode up to the end of block depth-1 and keep each row's states."""
        captured: list[torch.Tensor] = []

        def stop(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            self.tuple_output = isinstance(output, tuple)
            captured.append(output[0] if self.tuple_output else output)
            raise _Stop

        was_training = self.model.training
        self._uninstall()
        handle = self.blocks[-1].register_forward_hook(stop)
        self._computing = True
        try:
            self.model.eval()
            self.model(input_ids=ids, attention_mask=mask)
        except _Stop:
            pass
        finally:
            self._computing = False
            handle.remove()
            self._install()
            self.model.train(was_training)
        for j, key in enumerate(keys):
            self.store[key] = captured[0][j, : lengths[j]].clone()

    def stats(self) -> dict[str, float]:
        """Blocks cached, examples held, their memory, and how often the cache answered."""
        size = nbytes(self.store)
        return {
            "blocks": self.depth,
            "examples": len(self.store),
            "mb": size / 2**20,
            "hits": self.hits,
            "misses": self.misses,
        }
