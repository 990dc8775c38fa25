"""The two causal-LM configs differ only in the road and the radio, so their comparison reads side by side."""
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _yaml(name):
    return yaml.safe_load((REPO / "sumo_scenarios" / name).read_text())


def test_sf_fleet_llm_is_the_fleet_with_the_llm_default_learning():
    fleet, llm, both = _yaml("sf_fleet.yaml"), _yaml("llm_default.yaml"), _yaml("sf_fleet_llm.yaml")
    for section in ("mobility", "rsu", "channel", "devices"):
        assert both[section] == fleet[section], section
    for section in ("fl", "strategy", "seed"):
        assert both[section] == llm[section], section
    assert both["fl"]["model"] == "smollm2"


def test_the_bandits_share_one_rank_budget_in_both():
    for name in ("llm_default.yaml", "sf_fleet_llm.yaml"):
        per = _yaml(name)["strategy"]["per_strategy"]
        assert per["ucb_dual"]["rank_budget"] == per["dwell_ucb"]["rank_budget"] == 48, name
