"""The epsilon fedpeft reports, checked against a second, independent accountant for every sampler.

- Poisson sampling (central client-level DP, DP-SGD batches): Opacus's RDP accountant against Google's
  dp-accounting PLD accountant. RDP's conversion to (epsilon, delta) is an upper bound; in this regime it lies
  within 25% above the PLD's near-exact value. Below the PLD value would mean fedpeft under-reports.
- Sampling without replacement (fixed cohorts, replace-one): dp-accounting's RDP against autodp (the
  implementation by the bound's author, Yu-Xiang Wang), to 1e-6.
- No sampling, replace-one (local DP): the ledger halves the noise multiplier for sensitivity 2C; dp-accounting's
  PLD takes the replace-one relation itself and must agree within the same 25%.
"""

from __future__ import annotations

import logging

import dp_accounting
import pytest
import torch
from dp_accounting.pld import PLDAccountant
from hypothesis import given, settings
from hypothesis import strategies as st

from fedpeft.privacy.accounting import PrivacyLedger, calibrate
from fedpeft.privacy.dp_sgd import epsilon_of

logging.getLogger("absl").setLevel(logging.ERROR)
RDP_SLACK = 1.25


def pld_epsilon(event: dp_accounting.DpEvent, steps: int, delta: float, replace_one: bool = False) -> float:
    relation = dp_accounting.NeighboringRelation
    acc = PLDAccountant(
        neighboring_relation=relation.REPLACE_ONE if replace_one else relation.ADD_OR_REMOVE_ONE,
        value_discretization_interval=1e-3,
    )
    acc.compose(event, steps)
    return float(acc.get_epsilon(delta))


@pytest.mark.parametrize("z, q, rounds, delta", [(1.0, 0.25, 3, 1e-5), (0.9, 0.1, 40, 1e-6), (1.5, 0.5, 20, 1e-4)])
def test_poisson_client_sampling_matches_the_pld_accountant(z: float, q: float, rounds: int, delta: float) -> None:
    ledger = PrivacyLedger(delta, "poisson")
    for _ in range(rounds):
        ledger.step(z, q)
    second = pld_epsilon(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)), rounds, delta)
    assert second <= ledger.epsilon <= RDP_SLACK * second


def test_dp_sgd_epsilon_matches_the_pld_accountant() -> None:
    history = torch.tensor([[1.1, 0.05, 60.0], [1.1, 0.05, 60.0], [0.9, 0.08, 30.0]], dtype=torch.float64)
    ours = epsilon_of(history, 1e-5)
    relation = dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
    acc = PLDAccountant(neighboring_relation=relation, value_discretization_interval=1e-3)
    for z, q, steps in history.tolist():
        acc.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z)), int(steps))
    second = float(acc.get_epsilon(1e-5))
    assert second <= ours <= RDP_SLACK * second


@pytest.mark.parametrize("population, cohort, z, rounds", [(20, 5, 1.0, 3), (200, 20, 1.2, 30), (50, 25, 2.0, 10)])
def test_fixed_cohorts_match_autodp(population: int, cohort: int, z: float, rounds: int) -> None:
    from autodp.mechanism_zoo import GaussianMechanism
    from autodp.transformer_zoo import AmplificationBySampling, Composition

    delta = population**-1.1 if population == 20 else 1e-5
    ledger = PrivacyLedger(delta, "fixed", population)
    ledger.step(z, cohort / population, rounds)
    gauss = GaussianMechanism(sigma=z / 2)  # replace one client: the clipped sum moves by up to 2C
    gauss.neighboring = "replace_one"
    sampled = AmplificationBySampling(PoissonSampling=False)(gauss, cohort / population, improved_bound_flag=True)
    second = Composition()([sampled], [rounds]).get_approxDP(delta)
    assert ledger.epsilon == pytest.approx(second, rel=1e-6)
    if population == 20:  # the issue's check: z = 1, 5 of 20 clients, 3 rounds, delta 1/20^1.1
        assert ledger.epsilon == pytest.approx(8.08, abs=0.01)


@pytest.mark.parametrize("z, rounds", [(4.0, 5), (8.0, 20)])
def test_local_noise_is_accounted_for_replace_one_with_sensitivity_2c(z: float, rounds: int) -> None:
    ledger = PrivacyLedger(1e-5, "none")
    ledger.step(z, 1.0, rounds)
    second = pld_epsilon(dp_accounting.GaussianDpEvent(z), rounds, 1e-5, replace_one=True)
    assert second <= ledger.epsilon <= RDP_SLACK * second


def test_fixed_cohorts_cost_more_than_poisson_at_the_same_rate() -> None:
    poisson, fixed = PrivacyLedger(1e-5, "poisson"), PrivacyLedger(1e-5, "fixed", 100)
    for ledger in (poisson, fixed):
        ledger.step(1.0, 0.1, 20)
    assert fixed.epsilon > poisson.epsilon


@settings(max_examples=40, deadline=None)
@given(
    z=st.floats(0.3, 1e3),
    q=st.floats(1e-3, 1.0),
    steps=st.integers(1, 200),
    delta=st.floats(1e-9, 0.25),
    sampling=st.sampled_from(["poisson", "none"]),
)
def test_epsilon_is_never_negative(z: float, q: float, steps: int, delta: float, sampling: str) -> None:
    ledger = PrivacyLedger(delta, sampling)  # type: ignore[arg-type]
    ledger.step(z, q, steps)
    assert ledger.epsilon >= 0.0


def test_the_issue_case_of_a_negative_epsilon_reads_zero() -> None:
    ledger = PrivacyLedger(4**-1.1)  # 4 clients, 2 a round, z = 100, the old default delta
    ledger.step(100.0, 0.5, 3)
    assert ledger.epsilon == 0.0


@pytest.mark.parametrize("sampling, population", [("poisson", None), ("fixed", 400), ("none", None)])
def test_calibrated_noise_meets_the_target(sampling: str, population: int | None) -> None:
    z = calibrate(4.0, 1e-5, 0.05, 30, sampling, population)  # type: ignore[arg-type]
    ledger = PrivacyLedger(1e-5, sampling, population)  # type: ignore[arg-type]
    ledger.step(z, 0.05, 30)
    assert 3.8 <= ledger.epsilon <= 4.0
