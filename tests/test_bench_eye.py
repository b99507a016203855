"""The eye benchmark runs in a reduced mode and reports its ratios (no speed is asserted:
the machine is shared; the numbers are printed for the record)."""

from __future__ import annotations

import json

import pytest

from bench.eye import CROP_SIDES_PX, main
from device.eye.crops import mbs_crops


def test_eye_benchmark_reports_its_ratios_as_one_json_object(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--json", "--seconds", "0.1", "--frames", "2"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1
    result = json.loads(printed[0])
    with capsys.disabled():
        print("\n" + json.dumps(result, indent=1))
    limit = result["limit_invokes_per_s"]
    assert limit > 0 and result["full_frame_fps"] > 0
    assert result["full_frame_vs_limit"] == pytest.approx(
        result["full_frame_fps"] / limit, abs=0.01
    )
    # The eye as the station runs it (capture thread + scoring thread), in wall seconds.
    assert result["running_service_fps"] > 0
    assert result["running_service_vs_limit"] == pytest.approx(
        result["running_service_fps"] / result["limit_wall_invokes_per_s"], abs=0.01
    )
    assert result["scoring_chain_cpu_ms_per_frame"] > 0
    assert result["capture_cpu_ms_per_frame"] > 0
    assert result["scoring_chain_vs_limit"] == pytest.approx(
        1000 / result["scoring_chain_cpu_ms_per_frame"] / limit, rel=0.02
    )
    stages = result["stages_cpu_ms_per_frame"]
    assert set(stages) == {"decode", "bgr_to_rgb", "resize_to_model", "embed", "score_rest"}
    assert stages["embed"] > 0
    assert result["crop_maps_ceiling_per_s"] == pytest.approx(limit / len(mbs_crops()), abs=0.01)
    modes = result["crop_modes"]
    assert set(modes) == {"all", "round_robin_1", "round_robin_2", "round_robin_4"}
    # In "all" mode every frame is a complete map; round-robin needs several frames per map.
    assert modes["all"]["crop_maps_per_s"] == pytest.approx(modes["all"]["frames_per_s"], rel=0.05)
    assert modes["round_robin_1"]["crop_maps_per_s"] < modes["round_robin_1"]["frames_per_s"] / 10
    naive = result["naive_vs_ours"]
    assert -1.0 <= naive["spearman_naive_vs_ours_median"] <= 1.0
    curve = naive["curve"]
    assert [p["crop_frame_side_px"] for p in curve] == [s or "full" for s in CROP_SIDES_PX]
    assert curve[0]["spearman_vs_full_resolution_median"] == 1.0  # the reference itself
