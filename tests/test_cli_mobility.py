"""The mobility commands as a user types them: `iovsim scenario from-osm` and `iovsim trajectories import`."""
import json
from pathlib import Path

import yaml

from conftest import iovsim

REPO = Path(__file__).resolve().parents[1]


def test_from_osm_then_import_traces_on_it(shared_data_dir, tmp_path):
    osm = shared_data_dir / "maps" / "sanfrancisco_osm" / "SanFranciscoFiltered.osm"
    out = iovsim("scenario", "from-osm", osm, "--out", tmp_path / "sf", "--period", 5, "--end", 300,
                 "--rsu-placement", "junctions", "--rsu-count", 4, "--rsu-spacing", 600)
    assert out.returncode == 0, out.stderr[-2000:]
    scenario = Path(out.stdout.strip().splitlines()[-1])
    data = yaml.safe_load(scenario.read_text())
    net = scenario.parent / data["net_file"]
    assert net.exists() and (scenario.parent / "rsus.add.xml").exists()
    assert (scenario.parent / data["route_files"][0]).stat().st_size > 1000

    sample = REPO / "trajectories" / "samples" / "sf_synthetic_gps.csv"
    out = iovsim("trajectories", "import", sample, "--net", net, "--out", tmp_path / "traces",
                 "--columns", "vehicle,timestamp,latitude,longitude")
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((tmp_path / "traces" / "import_report.json").read_text())
    assert (tmp_path / "traces" / "routes.rou.xml").exists() and (tmp_path / "traces" / "replay.jsonl").exists()
    assert report["matcher"] == "hmm" and report["routes_written"] > 0  # counts of what was read, dropped, matched
    out = iovsim("trajectories", "import", sample, "--net", net, "--out", tmp_path / "traces_sumolib",
                 "--columns", "vehicle,timestamp,latitude,longitude", "--matcher", "sumolib", "--no-validate")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "map matching (sumolib)" in out.stdout
    assert json.loads((tmp_path / "traces_sumolib" / "import_report.json").read_text())["matcher"] == "sumolib"


def test_bad_columns_are_one_line(shared_data_dir, tmp_path):
    sample = REPO / "trajectories" / "samples" / "sf_synthetic_gps.csv"
    net = shared_data_dir / "maps" / "bologna_acosta" / "acosta_buslanes.net.xml"
    out = iovsim("trajectories", "import", sample, "--net", net, "--out", tmp_path / "t", "--columns", "id,time,lat,lon")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "sf_synthetic_gps.csv" in out.stderr
