"""Sparse fixed-mask fine-tuning: masks, agreement, and that only masked entries move and travel."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from fedpeft.methods.sparse import SparseMethod
from fedpeft.methods.sparse.method import SparseDelta, apply_sparse, calibrate_sparse, client_fisher_top, mask_of
from fedpeft.model import TrainableState


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(6, 5)
        self.classifier = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):  # type: ignore[no-untyped-def]
        logits = self.classifier(torch.relu(self.body(x)))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return type("Out", (), {"loss": loss, "logits": logits})()


@given(st.integers(1, 50), st.integers(0, 2**31 - 1))
@settings(max_examples=25, deadline=None)
def test_sparse_delta_adds_values_only_at_its_index(numel: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(numel, generator=gen)
    index = torch.randperm(numel, generator=gen)[: max(1, numel // 3)]
    delta = SparseDelta(index)
    delta.values.data = torch.randn(len(index), generator=gen)
    out = delta(w)
    changed = torch.zeros(numel, dtype=torch.bool)
    changed[index] = True
    assert torch.equal(out[~changed], w[~changed])
    torch.testing.assert_close(out[index], w[index] + delta.values.detach())


def test_magnitude_mask_keeps_the_largest_weights_and_only_they_train() -> None:
    net, w0 = Net(), Net().body.weight.detach().clone()
    model = apply_sparse(net, SparseMethod(density=0.2, selection="magnitude"), "sequence_classification")
    index = mask_of(model)["body.weight"]
    assert len(index) == 6  # 20% of 30
    assert w0.abs().reshape(-1)[index].min() >= w0.abs().reshape(-1).topk(6).values.min()
    state = TrainableState(model)
    assert state.numel() == 6 + 12  # masked entries plus the head
    opt = torch.optim.SGD(state.params.values(), lr=0.5)
    x, y = torch.randn(16, 6), torch.randint(0, 2, (16,))
    model(x, y).loss.backward()
    opt.step()
    moved = (model.body.weight.detach() - w0).reshape(-1) != 0
    assert moved[index].all() and moved.sum() == len(index)


def test_random_masks_agree_between_independent_clients() -> None:
    cfg = SparseMethod(density=0.3, selection="random")
    a = mask_of(apply_sparse(Net(), cfg, "sequence_classification"))
    b = mask_of(apply_sparse(Net(), cfg, "sequence_classification"))
    assert torch.equal(a["body.weight"], b["body.weight"])


def test_fisher_mask_is_agreed_from_client_scores() -> None:
    cfg = SparseMethod(density=0.2, selection="fisher")
    rng = np.random.default_rng(0)
    clients = [
        [
            {
                "x": torch.tensor(rng.normal(size=(8, 6)), dtype=torch.float32),
                "labels": torch.tensor(rng.integers(0, 2, 8)),
            }
        ]
        for _ in range(3)
    ]
    # one client: its mask is the top of its own squared gradients
    alone = mask_of(calibrate_sparse(Net(), cfg, "", [iter(clients[0])])[0])["body.weight"]
    net = Net()
    net.body.weight.requires_grad_(True)
    net(**clients[0][0]).loss.backward()
    expected = torch.sort((net.body.weight.grad**2).reshape(-1).topk(6).indices).values
    assert torch.equal(alone, expected)
    # three clients: the server keeps entries some client sent, and counts what they sent
    model, info = calibrate_sparse(Net(), cfg, "", [iter(c) for c in clients])
    sent = set().union(*(set(client_fisher_top(Net(), cfg, c)["body.weight"][0].tolist()) for c in clients))
    assert set(mask_of(model)["body.weight"].tolist()) <= sent
    assert info == {"mask_selection": "fisher", "clients": 3, "bytes_up_once": 3 * 6 * 8}
