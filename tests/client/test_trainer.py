import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from fedpeft.client.trainer import LocalTrainer, flatten_optimizer_state, unflatten_optimizer_state
from fedpeft.config.schema import ClientConfig
from fedpeft.data.batching import TokenizedDataset
from fedpeft.model.state import TrainableState


class BagOfTokens(nn.Module):
    """A two-layer MLP over token counts: the smallest model with the classifier call signature."""

    def __init__(self, vocab: int = 8) -> None:
        super().__init__()
        self.vocab = vocab
        self.body = nn.Linear(vocab, 16)
        self.classifier = nn.Linear(16, 2)

    def forward(self, input_ids, attention_mask, labels=None):  # type: ignore[no-untyped-def]
        counts = nn.functional.one_hot(input_ids, self.vocab).float().mul(attention_mask[..., None]).sum(1)
        logits = self.classifier(torch.relu(self.body(counts)))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def data(n: int = 40) -> TokenizedDataset:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n)
    ids = [[int(3 + 2 * y), int(rng.integers(1, 3))] for y in labels]
    return TokenizedDataset(ids, labels, pad_id=0)


def test_local_steps_and_epochs_count_steps_and_samples() -> None:
    model = BagOfTokens()
    ts = TrainableState(model)
    res, _ = LocalTrainer(model, ts, ClientConfig(local_steps=7, batch_size=4)).train(data(), np.random.default_rng(0))
    assert (res.steps, res.samples) == (7, 28)
    res, _ = LocalTrainer(model, ts, ClientConfig(local_epochs=2, batch_size=16)).train(
        data(), np.random.default_rng(0)
    )
    assert (res.steps, res.samples) == (6, 80)  # 40 examples: 16 + 16 + 8 per epoch


def test_training_only_changes_trainable_tensors_and_lowers_loss() -> None:
    torch.manual_seed(0)
    model = BagOfTokens()
    model.body.requires_grad_(False)
    frozen = model.body.weight.detach().clone()
    ts = TrainableState(model)
    cfg = ClientConfig(local_epochs=1, batch_size=8, lr=0.05)
    first, _ = LocalTrainer(model, ts, cfg).train(data(), np.random.default_rng(0))
    for _ in range(5):
        last, _ = LocalTrainer(model, ts, cfg).train(data(), np.random.default_rng(1))
    assert torch.equal(model.body.weight, frozen)
    assert last.loss < first.loss


def test_optimizer_state_round_trips_through_flat_tensors() -> None:
    model = BagOfTokens()
    ts = TrainableState(model)
    trainer = LocalTrainer(model, ts, ClientConfig(local_steps=2, keep_optimizer_state=True))
    _, flat = trainer.train(data(), np.random.default_rng(0))
    assert flat is not None and all(isinstance(v, torch.Tensor) for v in flat.values())
    opt = trainer.make_optimizer()
    opt.load_state_dict(unflatten_optimizer_state(flat, opt))
    again = flatten_optimizer_state(opt)
    assert flat.keys() == again.keys() and all(torch.equal(flat[k], again[k]) for k in flat)
