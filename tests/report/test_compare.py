"""Runs compared: entries from run folders and results files, the Pareto front, the table and the plots."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import fedpeft
from fedpeft.report.compare import collect, pareto, table


def dominated(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """b beats a: no more cost, no less quality, one of them strictly."""
    return b[0] <= a[0] and b[1] >= a[1] and (b[0] < a[0] or b[1] > a[1])


points = st.lists(st.tuples(st.integers(0, 20).map(float), st.integers(0, 20).map(float)), min_size=1, max_size=30)


@given(points)
def test_the_front_is_exactly_the_undominated_points(pts: list[tuple[float, float]]) -> None:
    front = set(pareto(pts))
    for i, p in enumerate(pts):
        assert (i in front) == (not any(dominated(p, q) for q in pts))
    assert front  # a finite set always has an undominated point


@given(points)
def test_lower_is_better_mirrors_the_quality_axis(pts: list[tuple[float, float]]) -> None:
    assert pareto(pts, higher_is_better=False) == pareto([(x, -y) for x, y in pts])


def test_runs_and_results_files_in_one_table_and_plot(tiny_config: dict, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from fedpeft.cli import main

    run = fedpeft.run(tiny_config, ["rounds=1"], progress=False)
    results = tmp_path / "bench.jsonl"
    rows = [
        {"method": "a", "seed": 0, "accuracy": 0.7, "bytes_up": 1e6, "wall_seconds": 5, "epsilon": 4.0},
        {"task": "chat", "setting": "federated", "final": {"perplexity": 9.5}, "bytes_up": 2e6},
        {"benchmark": "caching", "speedup": 1.5},  # no quality figure: left out
    ]
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    entries = collect([str(Path(run["run_dir"]).parent), str(results)])
    assert [e.name for e in entries] == ["tiny", "bench: a / seed 0", "bench: chat / federated"]
    tiny = entries[0]
    assert tiny.quality == run["final"]["accuracy"] and tiny.bytes_up == run["ledger"]["bytes_up"]
    assert entries[1].epsilon == 4.0 and entries[2].metric == "perplexity" and entries[2].quality == 9.5
    assert "bench: a / seed 0" in table(entries)
    out = tmp_path / "cmp.png"
    assert main(["compare", str(Path(run["run_dir"])), str(results), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000 and "tiny" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "nothing-*")]) == 2
