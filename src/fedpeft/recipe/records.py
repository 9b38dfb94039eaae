"""What a round leaves behind: its metrics.jsonl record, its costs in the ledger, its line in the log."""

from __future__ import annotations

from typing import Any

from fedpeft.report import Ledger
from fedpeft.runtime.base import RoundOutcome


def add_costs(ledger: Ledger, outcome: RoundOutcome, eval_s: float) -> None:
    """Count a round's bytes, seconds, samples and failures in ``ledger`` (and each client's energy)."""
    for cost in outcome.clients.values():
        if "cpu_seconds" in cost:
            cost["energy_wh_estimate"] = ledger.energy_wh_of(cost["cpu_seconds"])
    ledger.add_round(
        bytes_up=outcome.bytes_up,
        bytes_down=outcome.bytes_down,
        train_seconds=outcome.train_seconds,
        aggregate_seconds=outcome.aggregate_seconds,
        evaluate_seconds=eval_s,
        failed=outcome.status != "ok",
        rejected=len(outcome.rejected),
        samples=outcome.samples,
        dropped=len(outcome.dropped),
        late=len(outcome.late),
        simulated_seconds=outcome.simulated_seconds,
        clients=outcome.clients,
    )


def round_record(
    outcome: RoundOutcome, test: dict[str, float] | None, clients: dict[str, Any] | None, eval_s: float
) -> dict[str, Any]:
    return {
        "round": outcome.round,
        "status": outcome.status,
        "sampled": len(outcome.sampled),
        "accepted": len(outcome.accepted),
        "rejected": outcome.rejected,
        "dropped": outcome.dropped,
        "late": outcome.late,
        "simulated_seconds": outcome.simulated_seconds,
        "train_loss": outcome.train_loss,
        "samples": outcome.samples,
        "bytes_up": outcome.bytes_up,
        "bytes_down": outcome.bytes_down,
        "seconds": {"train": outcome.train_seconds, "aggregate": outcome.aggregate_seconds, "evaluate": eval_s},
        "clients": outcome.clients,
        "test": test,
        "per_client": clients,
    }


def round_line(outcome: RoundOutcome, test: dict[str, float] | None) -> str:
    quality = headline(test) if test else "no eval"
    status = "" if outcome.status == "ok" else f" [{outcome.status.upper()}]"
    dropped = f", {len(outcome.rejected)} rejected" if outcome.rejected else ""
    dropped += f", {len(outcome.dropped)} dropped/late" if outcome.dropped else ""
    dropped += f", {len(outcome.late)} stale used" if outcome.late else ""
    return (
        f"round {outcome.round:>3}{status}: {len(outcome.accepted)}/{len(outcome.sampled)} updates{dropped}, "
        f"train loss {outcome.train_loss:.3f}, {quality}, up {outcome.bytes_up / 1e6:.2f} MB, "
        f"{outcome.train_seconds:.1f} s"
    )


def headline(test: dict[str, float]) -> str:
    """The figures a round line shows: accuracy and macro-F1, or perplexity (and ROUGE-L) for a causal LM."""
    if "accuracy" in test:
        return f"test acc {test['accuracy']:.3f} f1 {test['macro_f1']:.3f}"
    rouge = f" rouge-L {test['rouge_l']:.3f}" if "rouge_l" in test else ""
    return f"test ppl {test['perplexity']:.2f}{rouge}"
