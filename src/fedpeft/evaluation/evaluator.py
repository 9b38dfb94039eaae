"""Scores a trainable state on a run's held-out data: centrally, per client, and each client's own model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from fedpeft.client.app import FederatedClient
from fedpeft.config.schema import EvalConfig
from fedpeft.data.batching import CausalLMDataset
from fedpeft.data.chat import prompt_ids
from fedpeft.data.dataset import Examples, GenerationDataset
from fedpeft.evaluation.classification import class_report, metrics, per_client_metrics, predict
from fedpeft.evaluation.generative import exact_match, greedy_answers, perplexity, rouge_l
from fedpeft.evaluation.personalised import needs_personalisation, personalised_metrics, spread
from fedpeft.model.device import autocast, model_device
from fedpeft.model.state import TensorDict, TrainableState

Metrics = dict[str, float]


@dataclass
class Evaluator:
    """Test metrics of any trainable state on the run's shared model. Classifiers: accuracy, macro-F1, loss,
    and (kept in ``classes``) per-class recall and the confusion matrix; causal LMs: perplexity and, with
    answers, greedy answers scored by ROUGE-L and exact match (a few kept in ``samples``). With local
    held-out examples, every client is scored too.

    Example:
        >>> ev = Evaluator("sequence_classification", model, trainable, tokenizer, test, test_inputs,  # doctest: +SKIP
        ...                ["neg", "pos"], cfg.eval)
        >>> central, per_client = ev(strategy.evaluation_state())  # doctest: +SKIP
    """

    task: str
    model: nn.Module
    trainable: TrainableState
    tokenizer: Any
    test: Examples
    test_inputs: Any
    label_names: list[str]
    cfg: EvalConfig
    local_test: Any = None
    local_groups: Sequence[tuple[str, np.ndarray]] = ()
    classes: dict[str, Any] | None = None  # per-class recall and confusion matrix of the latest evaluation
    samples: list[dict[str, str]] | None = None  # a few greedy answers of the latest evaluation (causal LMs)
    precision: str = "fp32"  # bf16 / fp16: evaluated under autocast (the frozen base is stored in half precision)

    @property
    def key(self) -> str:
        """The metric that ranks clients: perplexity for language models, else accuracy."""
        return "perplexity" if self.task == "causal_lm" else "accuracy"

    def __call__(self, state: TensorDict) -> tuple[Metrics, dict[str, Any] | None]:
        """Central test metrics of ``state``, and per-client metrics on local held-out examples if any."""
        with autocast(model_device(self.model), self.precision):
            return self._evaluate(state)

    def _evaluate(self, state: TensorDict) -> tuple[Metrics, dict[str, Any] | None]:
        self.trainable.load(state)
        if self.task == "causal_lm":
            central = self._generation()
        else:
            pred = predict(self.model, self.test_inputs, self.cfg.batch_size)
            self.classes = class_report(pred, self.label_names)
            central = metrics(pred, len(self.label_names))
        if self.local_test is None:
            return central, None
        clients = (
            {cid: self.score(self.model, self.local_test.subset(idx)) for cid, idx in self.local_groups if len(idx)}
            if self.task == "causal_lm"
            else self._per_client_classes()
        )
        return central, {**spread(clients, self.key), "by_client": clients}

    def score(self, model: nn.Module, data: Any) -> Metrics:
        """The task's metrics of ``model`` on ``data`` (one client's examples)."""
        if self.task == "causal_lm":
            return perplexity(model, data, self.cfg.batch_size)
        return metrics(predict(model, data, self.cfg.batch_size), len(self.label_names))

    def _per_client_classes(self) -> dict[str, Metrics]:
        pred = predict(self.model, self.local_test, self.cfg.batch_size)
        return per_client_metrics(pred, list(self.local_groups), len(self.label_names))

    def _generation(self) -> Metrics:
        """Perplexity on the held-out texts; with answers, greedy answers to the first
        ``eval.generate_examples`` held-out prompts scored by ROUGE-L and exact match."""
        cfg, test = self.cfg, self.test
        assert isinstance(self.test_inputs, CausalLMDataset) and isinstance(test, GenerationDataset)
        central = {**perplexity(self.model, self.test_inputs, cfg.batch_size), "examples": float(len(test))}
        n = min(cfg.generate_examples, len(test))
        if test.targets is not None and n:
            prompts = [prompt_ids(self.tokenizer, q) for q in test.texts[:n]]
            answers = greedy_answers(
                self.model,
                self.tokenizer,
                prompts,
                max_new_tokens=cfg.max_new_tokens,
                batch_size=min(cfg.batch_size, 16),
            )
            central["answered"] = float(n)
            central["rouge_l"] = rouge_l(answers, test.targets[:n])
            central["exact_match"] = exact_match(answers, test.targets[:n])
            self.samples = [
                {"prompt": q, "reference": r, "answer": a}
                for q, r, a in list(zip(test.texts, test.targets, answers))[:3]
            ]
        return central

    def personalised(
        self, client: FederatedClient, state: TensorDict, rank_of: Callable[[str], int | None], round_: int
    ) -> dict[str, Any] | None:
        """Per-client metrics of each client's own model (rank, personal tensors, local fine-tuning), if any
        differs from the global one."""
        steps = self.cfg.finetune_steps
        if self.local_test is None or not needs_personalisation(client, steps):
            return None
        with autocast(model_device(self.model), self.precision):
            clients = personalised_metrics(
                client,
                state,
                list(self.local_groups),
                self.local_test,
                rank_of=rank_of,
                finetune_steps=steps,
                round_=round_,
                score=self.score,
            )
        return {**spread(clients, self.key), "finetune_steps": steps, "by_client": clients}
