"""fedpeft's mean-pooling sequence classifier as Hugging Face remote code: copied beside a saved adapter so
that transformers and peft alone (no fedpeft) load the trained model.

A run's adapter folder holds this file, a ``config.json`` naming it in ``auto_map`` (with the base model's
id in ``fedpeft_base_model`` and the labels in ``id2label``), the tokenizer and the peft adapter. Then:

    >>> from transformers import AutoModelForSequenceClassification  # doctest: +SKIP
    >>> model = AutoModelForSequenceClassification.from_pretrained("runs/quickstart/adapter",
    ...                                                            trust_remote_code=True)  # doctest: +SKIP

builds the base encoder from its id (the hub, or the local cache), puts the mean-pooling head on it and
loads the adapter with peft: the same model, and so the same predictions, as the run's. This file imports
only torch, transformers and peft.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

DOWNLOAD_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "revision", "proxies")


def mean_pooling_forward(
    model: Any,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    past_key_values: Any = None,
    **kwargs: Any,
) -> SequenceClassifierOutput:
    """The forward of both mean-pooling heads: ``model.encoder`` -> masked mean of the last hidden states ->
    ``model.dropout`` -> ``model.classifier``. ``inputs_embeds`` (prompt tuning) and ``past_key_values``
    (prefix tuning, whose attention mask also covers the prefix) pass through to the encoder; the pooling
    covers the hidden states only."""
    hidden = model.encoder(
        input_ids=input_ids,
        attention_mask=attention_mask,
        inputs_embeds=inputs_embeds,
        past_key_values=past_key_values,
    ).last_hidden_state
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=hidden.device)
    mask = attention_mask[:, -hidden.shape[1] :].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    logits = model.classifier(model.dropout(pooled))
    loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
    return SequenceClassifierOutput(loss=loss, logits=logits)


class MeanPoolingForSequenceClassification(PreTrainedModel):
    """Encoder -> masked mean of the last hidden states -> dropout -> linear classifier (fedpeft's
    ``MeanPoolingClassifier``, with the same module names, so its adapters load as they were saved)."""

    config_class = PretrainedConfig
    base_model_prefix = "encoder"

    def __init__(self, config: PretrainedConfig, encoder: nn.Module | None = None) -> None:
        super().__init__(config)
        self.encoder = encoder if encoder is not None else AutoModel.from_config(config)
        self.dropout = nn.Dropout(float(getattr(config, "fedpeft_head_dropout", 0.1)))
        self.classifier = nn.Linear(int(config.hidden_size), int(config.num_labels or 2))

    forward = mean_pooling_forward

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *args: Any, **kwargs: Any) -> Any:
        """The base encoder from ``config.fedpeft_base_model``, this head, and the folder's peft adapter
        (a ``peft.PeftModel`` in eval mode)."""
        from peft import PeftModel

        folder = str(pretrained_model_name_or_path)
        config = kwargs.get("config")
        if not isinstance(config, PretrainedConfig):
            config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
        download = {k: kwargs[k] for k in DOWNLOAD_KWARGS if kwargs.get(k) is not None}
        download.pop("revision", None)  # the folder's revision, not the base's
        depth = {"num_hidden_layers": config.num_hidden_layers} if hasattr(config, "num_hidden_layers") else {}
        encoder = AutoModel.from_pretrained(config.fedpeft_base_model, **depth, **download)  # (a cut-down run)
        model = cls(config, encoder=encoder)
        return PeftModel.from_pretrained(model, folder).eval()
