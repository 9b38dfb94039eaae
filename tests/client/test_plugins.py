"""Client plugins: the strategies' client halves (from their folders) and the rank mask, each on a
hand-sized tensor."""

from __future__ import annotations

import torch
from torch import nn

from fedpeft.client.plugins import FitContext, RankMask
from fedpeft.strategy.fedprox import ProximalTerm
from fedpeft.strategy.fedsa_lora import PersonalTensors
from fedpeft.strategy.hetlora import RankSelfPruning
from fedpeft.strategy.scaffold import ControlVariates

A, B = "m.lora_A.default.weight", "m.lora_B.default.weight"


def ctx_for(params: dict[str, nn.Parameter], received=None, config=None, personal=None) -> FitContext:  # type: ignore[no-untyped-def]
    return FitContext(1, "c0", config or {}, received or {}, params, personal or {}, lr=0.1)


def test_proximal_term_adds_mu_times_distance_to_the_global_weights() -> None:
    w = nn.Parameter(torch.tensor([3.0, -1.0]))
    ctx = ctx_for({"w": w})
    ctx.start = {"w": torch.tensor([1.0, 1.0])}
    w.grad = torch.tensor([0.5, 0.5])
    ProximalTerm(0.1).gradients(ctx)
    assert torch.allclose(w.grad, torch.tensor([0.5 + 0.1 * 2, 0.5 - 0.1 * 2]))


def test_control_variates_correct_gradients_and_report_their_change() -> None:
    # Prepare: server c = 1, client c_i = 0.25 (stored), one parameter.
    w = nn.Parameter(torch.zeros(1))
    personal = {"scaffold.ci/w": torch.tensor([0.25])}
    ctx = ctx_for({"w": w}, received={"w": torch.zeros(1), "scaffold.c/w": torch.tensor([1.0])}, personal=personal)
    cv = ControlVariates()
    # Execute
    cv.receive(ctx)
    seen = []
    for raw in (2.0, 0.0):  # two local steps with these raw gradients
        w.grad = torch.tensor([raw])
        cv.gradients(ctx)
        seen.append(w.grad.item())
    ctx.steps, ctx.update = 2, {"w": torch.tensor([-0.8])}
    cv.finish(ctx)
    # Assert: each gradient + (c - c_i) = + 0.75; c_i+ = mean raw gradient = 1.0; sent c_i+ - c_i = 0.75
    assert "scaffold.c/w" not in ctx.received
    assert seen == [2.75, 0.75]
    assert ctx.personal["scaffold.ci/w"].item() == 1.0
    assert ctx.update["scaffold.dc/w"].item() == 0.75


def test_personal_tensors_start_from_the_clients_own_values_and_are_kept() -> None:
    b = nn.Parameter(torch.full((2,), 9.0))  # left over from another client on the shared model
    plugin = PersonalTensors({"b": torch.zeros(2)})
    first = ctx_for({"b": b})
    plugin.start(first)
    assert b.tolist() == [0.0, 0.0]  # first round: the initial value
    with torch.no_grad():
        b.add_(1.5)
    plugin.finish(first)
    b.data.fill_(-4.0)
    second = ctx_for({"b": b}, personal=first.personal)
    plugin.start(second)
    assert b.tolist() == [1.5, 1.5]


def test_rank_mask_pads_masks_and_cuts_to_the_clients_rank() -> None:
    a, b = nn.Parameter(torch.ones(4, 3)), nn.Parameter(torch.ones(2, 4))
    ctx = ctx_for({A: a, B: b}, received={A: torch.full((2, 3), 5.0), B: torch.full((2, 2), 5.0)}, config={"rank": 2})
    mask = RankMask()
    mask.receive(ctx)
    assert ctx.received[A].shape == (4, 3) and ctx.received[A][2:].abs().sum() == 0
    a.data.copy_(ctx.received[A])
    b.data.copy_(ctx.received[B])
    mask.start(ctx)
    a.grad, b.grad = torch.ones(4, 3), torch.ones(2, 4)
    mask.gradients(ctx)
    assert a.grad[2:].abs().sum() == 0 and b.grad[:, 2:].abs().sum() == 0 and a.grad[:2].sum() == 6
    ctx.update = {A: torch.ones(4, 3), B: torch.ones(2, 4)}
    mask.finish(ctx)
    assert ctx.update[A].shape == (2, 3) and ctx.update[B].shape == (2, 2) and ctx.metrics["rank"] == 2


def test_self_pruning_drops_the_tail_once_its_norm_falls() -> None:
    a, b = nn.Parameter(torch.ones(4, 3)), nn.Parameter(torch.ones(2, 4))
    prune = RankSelfPruning(gamma=0.5, lam=0.1, min_rank=1)
    first = ctx_for({A: a, B: b}, config={"rank": 4})
    prune.receive(first)
    a.grad, b.grad = torch.zeros(4, 3), torch.zeros(2, 4)
    prune.gradients(first)
    assert a.grad[:2].abs().sum() == 0 and a.grad[2:].abs().sum() > 0  # only the tail is regularised
    prune.finish(first)
    assert first.metrics["next_rank"] == 4  # no earlier norm to compare with
    with torch.no_grad():
        a[2:].mul_(0.5)
    second = ctx_for({A: a, B: b}, config={"rank": 4}, personal=first.personal)
    prune.receive(second)
    prune.finish(second)
    assert second.metrics["next_rank"] == 2
    third = ctx_for({A: a, B: b}, config={"rank": 4}, personal=second.personal)
    prune.receive(third)
    assert third.rank == 2
