"""Secure aggregation: the sum is exact with dropouts, and what the server holds reveals no single update."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedpeft.privacy.secagg import (
    SecAggClient,
    SecAggError,
    SecAggServer,
    dequantise,
    quantise,
    reconstruct,
    run_secagg,
    share,
)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 7), drops=st.integers(0, 3), size=st.integers(1, 50), seed=st.integers(0, 1000))
def test_sum_is_exact_with_dropouts(n: int, drops: int, size: int, seed: int) -> None:
    t = max(2, n // 2 + 1)
    drops = min(drops, n - t)  # enough survivors to unmask
    rng = np.random.default_rng(seed)
    xs = {f"c{i}": rng.uniform(-1, 1, size) for i in range(n)}
    dropped = [f"c{i}" for i in rng.choice(n, size=drops, replace=False)]
    total = run_secagg(xs, threshold=t, bound=1.0, frac_bits=20, drop_after_sharing=dropped)
    survivors = [c for c in xs if c not in dropped]
    exact = dequantise(sum(quantise(xs[c], 1.0, 20).astype(np.int64) for c in survivors) % 2**32, 20)
    assert np.array_equal(total, exact)  # exact in the integer domain
    assert np.allclose(total, sum(xs[c] for c in survivors), atol=n * 2**-20)


def test_shamir_needs_the_threshold() -> None:
    shares = share(2**255 + 12345, n=6, t=4)
    assert reconstruct(shares[2:6]) == 2**255 + 12345 == reconstruct(shares[:4])
    assert reconstruct(shares[:3]) != 2**255 + 12345


def test_masked_updates_look_uniform_whatever_the_input() -> None:
    """A single masked input is uniform over Z_2^32 even for a constant update: its bytes pass a chi-square
    test, and it is uncorrelated with the update."""
    n, size = 4, 20_000
    xs = {f"c{i}": np.full(size, 0.5) for i in range(n)}
    xs["c0"] = np.linspace(-1, 1, size)
    clients = {cid: SecAggClient(cid, i + 1) for i, cid in enumerate(sorted(xs))}
    peers = {cid: (c.index, c.public_key) for cid, c in clients.items()}
    for c in clients.values():
        c.shares_for(peers, 3)
    for cid, c in clients.items():
        y = c.masked_input(xs[cid], 1.0, 16)
        counts = np.bincount(y.view(np.uint8), minlength=256)
        expected = y.nbytes / 256
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 340  # 255 degrees of freedom: p < 0.0003 above this
        assert abs(np.corrcoef(y.astype(np.float64), xs[cid])[0, 1]) < 0.05 if cid == "c0" else True
        assert not np.array_equal(y, quantise(xs[cid], 1.0, 16))


def test_too_few_survivors_is_refused() -> None:
    xs = {f"c{i}": np.ones(3) * 0.1 for i in range(5)}
    with pytest.raises(SecAggError, match="at least 4 are needed"):
        run_secagg(xs, threshold=4, drop_after_sharing=["c0", "c1"])


def test_a_client_never_reveals_both_shares_of_one_client() -> None:
    c = SecAggClient("c0", 1)
    with pytest.raises(SecAggError, match="both"):
        c.reveal(["c1"], ["c1"])


def test_the_server_never_holds_an_update() -> None:
    xs = {f"c{i}": np.full(8, 0.25 * i) for i in range(4)}
    clients = {cid: SecAggClient(cid, i + 1) for i, cid in enumerate(sorted(xs))}
    peers = {cid: (c.index, c.public_key) for cid, c in clients.items()}
    for cid, c in clients.items():
        for other, blob in c.shares_for(peers, 3).items():
            clients[other].received[cid] = blob
    server = SecAggServer(3, 1.0, 16)
    for cid, c in clients.items():
        server.masked[cid] = c.masked_input(xs[cid], 1.0, 16)
        assert not np.array_equal(server.masked[cid], quantise(xs[cid], 1.0, 16))
    reveals = {cid: clients[cid].reveal(sorted(clients), []) for cid in clients}
    assert all(kind == "b" for r in reveals.values() for kind, _ in r.values())  # no secret key revealed
    assert np.allclose(server.unmask(8, peers, reveals), sum(xs.values()), atol=4 * 2**-16)
