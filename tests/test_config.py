"""Config loading: every error names the file and the field, and the CLI shows it as one line."""
import subprocess
import sys

import pytest
import yaml

from iovsim.config import ConfigError, ExperimentConfig, load_config, to_dict
from iovsim.experiment import default_config_path

from conftest import iovsim


def write(tmp_path, data, name="exp.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def test_default_config_loads_and_round_trips(tmp_path):
    cfg = load_config(default_config_path())
    assert cfg.fl.rounds >= 1 and len(cfg.fl.tasks) == 2
    again = load_config(write(tmp_path, to_dict(cfg)))
    assert to_dict(again) == to_dict(cfg)


@pytest.mark.parametrize("data, field, words", [
    ({"fl": {"roundz": 3}}, "fl.roundz", "unknown key"),
    ({"fl": {"rounds": "many"}}, "fl.rounds", "expected an integer"),
    ({"fl": {"rounds": 0}}, "fl.rounds", ">= 1"),
    ({"mobility": {"backend": "carla"}}, "mobility.backend", "expected one of libsumo, traci, got 'carla'"),
    ({"mobility": {"net_file": "nowhere.net.xml"}}, "mobility.net_file", "file not found"),
    ({"fl": {"tasks": [{"name": "a", "dirichlet_alpha": -1}]}}, "fl.tasks[0].dirichlet_alpha", "> 0"),
    ({"channel": {"rsu_bandwidth_hz": "lots"}}, "channel.rsu_bandwidth_hz", "expected a finite number of Hz"),
    ({"mobility": {"warmup_s": float("nan")}}, "mobility.warmup_s", "expected a finite number of seconds >= 0"),
    ({"seed": -1}, "seed", "expected an integer >= 0 and <= 2147483647, got -1"),
    ({"seed": 2**31}, "seed", "expected an integer >= 0 and <= 2147483647, got 2147483648"),
    ({"rsu": {"spacing_m": float("nan")}}, "rsu.spacing_m", "metres > 0"),
    ({"fl": {"round_deadline_s": float("nan")}}, "fl.round_deadline_s", "seconds > 0 and <= 86400, got nan"),
    ({"fl": {"round_deadline_s": 1e12}}, "fl.round_deadline_s", "<= 86400"),
    ({"mobility": {"end_s": float("nan")}}, "mobility.end_s", "got nan"),
    ({"fl": {"samples_per_vehicle": 0}}, "fl.samples_per_vehicle", "expected an integer >= 1"),
    ({"fl": {"min_samples_per_vehicle": -3}}, "fl.min_samples_per_vehicle", "expected an integer >= 0"),
    ({"devices": [{"share": 1.0, "flops_per_s": float("nan")}]}, "devices[0].flops_per_s", "FLOP/s > 0"),
    ({"devices": [{"share": 1.0, "power_w": float("nan")}]}, "devices[0].power_w", "watts > 0"),
    ({"fl": {"lora_ranks": [4, 0]}}, "fl.lora_ranks[1]", "expected an integer >= 1"),
    ({"channel": {"pathloss_model": "rma"}}, "channel.pathloss_model", "expected one of umi, uma, freespace"),
    ({"channel": {"los_model": "sometimes"}}, "channel.los_model", "expected one of stochastic, expected, los, nlos"),
    ({"channel": {"bandwidth_allocation": "greedy"}}, "channel.bandwidth_allocation", "equal, proportional, minmax"),
    ({"rsu": {"placement": "hexagons"}}, "rsu.placement", "expected one of regular, junctions, kmeans, hex, file"),
    ({"fl": {"device": "tpu"}}, "fl.device", "expected one of cpu, cuda, auto, got 'tpu'"),
    ({"mobility": {"enrol": 1}}, "mobility.enrol", "expected one of first, random, got 1"),
    ({"mobility": {"scenario": "sumo:no/such/folder"}}, "mobility.scenario", "file not found"),
    ({"devices": [{"name": "x", "share": 0.5}]}, "devices", "summing to 1"),
])
def test_errors_name_file_and_field(tmp_path, data, field, words):
    p = write(tmp_path, data)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and f"'{field}'" in msg and words in msg, msg
    assert "\n" not in msg


def test_scientific_notation_strings_are_numbers(tmp_path):
    cfg = load_config(write(tmp_path, {"channel": {"rsu_bandwidth_hz": "1e7"}}))
    assert cfg.channel.rsu_bandwidth_hz == 1e7


def test_cli_reports_one_line_without_traceback(tmp_path):
    p = write(tmp_path, {"fl": {"local_stepz": 2}})
    out = iovsim("run", p)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "fl.local_stepz" in lines[0] and str(p) in lines[0]


def test_cli_missing_config_file(tmp_path):
    out = iovsim("run", tmp_path / "nope.yaml")
    assert out.returncode == 2 and "config file not found" in out.stderr and "Traceback" not in out.stderr


def test_defaults_are_documented():
    from iovsim.config import field_docs
    from iovsim.fl.config import FlConfig

    docs = dict((n, d) for n, _, d in field_docs(FlConfig))
    assert docs["local_steps"] and docs["lora_rank"]
    assert ExperimentConfig().seed == 0


def test_config_reference_is_up_to_date():
    """docs/config.md is generated from the dataclasses; regenerate with tools/gen_config_reference.py."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(repo / "tools" / "gen_config_reference.py"), "--check"])
    assert out.returncode == 0, "docs/config.md is stale: run tools/gen_config_reference.py"


def test_set_reaches_into_a_list_the_file_gives(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"fl": {"tasks": [{"name": "a"}, {"name": "b", "max_length": 32}]}}))
    cfg = load_config(p, {"fl.tasks[1].max_length": 40, "fl.rounds": 3})
    assert [t.max_length for t in cfg.fl.tasks] == [48, 40] and cfg.fl.rounds == 3
    with pytest.raises(ConfigError, match=r"c.yaml: field 'fl.tasks\[0\]': --set fl.tasks\[0\].max_length"):
        p.write_text("seed: 1\n")
        load_config(p, {"fl.tasks[0].max_length": 40})


def test_a_key_given_twice_names_both_lines(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("seed: 1\nfl:\n  rounds: 2\n  rounds: 3\n")
    with pytest.raises(ConfigError, match=r"c.yaml: not valid YAML at line 4: key 'rounds' appears twice \(first at line 3\)"):
        load_config(p)
