"""The nose benchmark runs and reports its ratio (no speed is asserted: machines are shared)."""

from __future__ import annotations

from bench.nose import ADS1115_MAX_SPS, run


def test_nose_benchmark_reports_rates_against_the_adc_ceiling() -> None:
    result = run(seconds=1.0)
    assert result["ads1115_max_sps"] == ADS1115_MAX_SPS
    assert result["pipeline_samples_per_s"] > 0
    ratio = result["pipeline_samples_per_s"] / ADS1115_MAX_SPS
    assert abs(result["pipeline_vs_ads1115"] - ratio) <= 0.01
    assert result["pipeline_food_verdicts"] > 0  # the classifier is part of what is measured
