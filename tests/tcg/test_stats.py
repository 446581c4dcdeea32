"""The interval code of rcu-compare against known distributions."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcg.stats import (
    Interval,
    family_confidence,
    log_interval,
    ratio_interval,
    t_cdf,
    t_quantile,
)

# Student t quantiles from the published tables.
KNOWN = [
    (1, 0.975, 12.706),
    (2, 0.975, 4.303),
    (4, 0.995, 4.604),
    (10, 0.975, 2.228),
    (30, 0.995, 2.750),
    (4, 0.9995, 8.610),
    (120, 0.975, 1.980),
]


@pytest.mark.parametrize(("df", "p", "value"), KNOWN)
def test_t_quantile_matches_the_tables(df: int, p: float, value: float) -> None:
    assert t_quantile(p, df) == pytest.approx(value, abs=1e-3)
    assert t_quantile(1 - p, df) == pytest.approx(-value, abs=1e-3)


def test_t_with_one_degree_of_freedom_is_cauchy() -> None:
    for p in (0.6, 0.9, 0.999):
        assert t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)


@given(
    st.floats(min_value=1e-4, max_value=1 - 1e-4),
    st.floats(min_value=0.5, max_value=1e4),
)
def test_t_cdf_inverts_t_quantile(p: float, df: float) -> None:
    assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, abs=1e-9)


@given(st.floats(min_value=0.5, max_value=0.9999), st.floats(min_value=0.5, max_value=500))
def test_t_is_wider_than_normal_and_narrows_with_df(p: float, df: float) -> None:
    normal = statistics.NormalDist().inv_cdf(p)
    assert t_quantile(p, df) >= t_quantile(p, df * 2) - 1e-9 >= normal - 1e-6
    assert t_quantile(p, math.inf) == pytest.approx(normal)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_t_quantile_rejects_a_probability_outside_0_1(bad: float) -> None:
    with pytest.raises(ValueError, match="p must be"):
        t_quantile(bad, 3)


def test_family_confidence_is_bonferroni() -> None:
    assert family_confidence(0.95, 1) == pytest.approx(0.95)
    assert family_confidence(0.95, 50) == pytest.approx(0.999)
    with pytest.raises(ValueError, match="comparisons must be >= 1"):
        family_confidence(0.95, 0)


positive = st.floats(min_value=1e-3, max_value=1e3, allow_nan=False)


@given(st.lists(positive, min_size=2, max_size=12), st.floats(min_value=1e-2, max_value=1e2))
def test_log_interval_holds_the_geometric_mean_and_scales_with_the_data(
    values: list[float], scale: float
) -> None:
    interval = log_interval(values)
    assert interval is not None
    assert interval.low <= interval.estimate <= interval.high
    assert interval.estimate == pytest.approx(statistics.geometric_mean(values), rel=1e-9)
    scaled = log_interval([v * scale for v in values])
    assert scaled is not None
    assert scaled.low == pytest.approx(interval.low * scale, rel=1e-6)
    assert scaled.high == pytest.approx(interval.high * scale, rel=1e-6)


@given(st.lists(st.lists(st.floats(-3, 3), min_size=2, max_size=8), min_size=1, max_size=6))
def test_a_ratio_interval_turned_around_is_its_reciprocal(groups: list[list[float]]) -> None:
    forward = ratio_interval(groups)
    backward = ratio_interval([[-x for x in g] for g in groups])
    assert forward is not None
    assert backward is not None
    assert forward.low <= forward.estimate <= forward.high
    assert backward.estimate == pytest.approx(1 / forward.estimate, rel=1e-9)
    assert backward.low == pytest.approx(1 / forward.high, rel=1e-6)


def test_fewer_than_two_runs_give_no_interval() -> None:
    assert log_interval([3.0]) is None
    assert ratio_interval([[0.1, 0.2], [0.3]]) is None
    same = math.exp(0.5)
    assert ratio_interval([[0.5, 0.5, 0.5]]) == Interval(same, same, same)


def _coverage(trials: int, draw: object, truth: float, confidence: float = 0.95) -> float:
    hits = 0
    for _ in range(trials):
        interval = draw()  # type: ignore[operator]
        hits += interval.low <= truth <= interval.high
    return hits / trials


@pytest.mark.parametrize("n", [3, 5, 10])
def test_log_interval_covers_a_lognormal_median_95_percent_of_the_time(n: int) -> None:
    rng = random.Random(n)
    median = 2.5

    def draw() -> Interval | None:
        return log_interval([median * math.exp(rng.gauss(0, 0.2)) for _ in range(n)])

    assert 0.93 <= _coverage(3000, draw, median) <= 0.97


def test_pooled_ratio_interval_covers_with_cells_of_unequal_noise() -> None:
    # Three cells, true log ratios 0.1, -0.2 and 0.4, noise 0.05 to 0.4: the
    # estimate targets the geometric mean of the three ratios.
    rng = random.Random(7)
    means, sds, n = (0.1, -0.2, 0.4), (0.05, 0.15, 0.4), 5
    truth = math.exp(sum(means) / len(means))

    def draw() -> Interval | None:
        return ratio_interval(
            [[rng.gauss(m, s) for _ in range(n)] for m, s in zip(means, sds, strict=False)]
        )

    assert 0.93 <= _coverage(3000, draw, truth) <= 0.975


def test_a_corrected_family_of_ties_rarely_makes_a_claim() -> None:
    # 30 comparisons of identical distributions, each at the Bonferroni level:
    # at most 5% of such families may claim anything. Checked over 400 families.
    rng = random.Random(11)
    each = family_confidence(0.95, 30)
    wrong = 0
    for _ in range(400):
        claims = 0
        for _ in range(30):
            interval = ratio_interval([[rng.gauss(0, 0.1) for _ in range(5)]], each)
            assert interval is not None
            claims += interval.excludes(1.0)
        wrong += claims > 0
    assert wrong / 400 <= 0.05
    # and the same intervals find a real difference of 30%
    found = 0
    for _ in range(100):
        interval = ratio_interval([[rng.gauss(math.log(1.3), 0.02) for _ in range(5)]], each)
        assert interval is not None
        found += interval.low > 1.0
    assert found == 100


def test_t_quantile_just_above_the_center_still_narrows_with_df() -> None:
    # Found by Hypothesis: near p = 0.5 the tail formula lost t entirely.
    p = 0.5000000000000001
    assert t_quantile(p, 1.0) >= t_quantile(p, 2.0) - 1e-12
    assert t_quantile(p, 2.0) >= 0.0


def test_a_ratio_interval_survives_a_variance_that_underflows_when_squared() -> None:
    interval = ratio_interval([[0.0, 5.65e-121]])
    assert interval is not None
    assert interval.low <= interval.estimate <= interval.high
