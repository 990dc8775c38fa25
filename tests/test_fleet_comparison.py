"""tools/fleet_comparison.py reads what the road did to the rounds from a run's logs: checked by hand."""
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tools.fleet_comparison import road_and_radio  # noqa: E402


def _write(d: Path, name: str, text: str) -> None:
    (d / name).write_text(text.strip() + "\n")


def test_road_and_radio_by_hand(tmp_path):
    _write(tmp_path, "vehicles.csv", """
round,vehicle,status,upload_time_s
1,a,ok,4.0
1,b,migrated,8.0
2,a,lost_handover,
2,c,lost_left,0
""")
    # a is a participant of round 1, so its handover then counts;
    # b has two in round 1 (a ping-pong); c's is in round 1 where c did not train -> not counted.
    _write(tmp_path, "handovers.csv", """
time_s,round,vehicle,from_rsu,to_rsu
10,1,a,1,2
11,1,b,2,3
12,1,b,3,2
13,1,c,1,2
20,2,a,2,1
""")
    _write(tmp_path, "metrics.csv", """
round,task,lost_handover,lost_left,lost_deadline
1,t0,0,0,0
1,t1,0,0,1
2,t0,1,1,0
""")
    _write(tmp_path, "dwell.csv", """
round,vehicle,rsu,start_s,predicted_s,actual_s,end
1,a,1,0,5,2,handover
1,b,2,0,9,4,handover
2,a,2,15,9,6,handover
2,c,1,15,inf,inf,left
""")
    got = road_and_radio(tmp_path)
    assert got["jobs"] == 4
    assert got["handovers_per_job"] == 4 / 4            # a:1 + b:2 in round 1, a:1 in round 2
    assert got["handover_share"] == 2 / 4               # b migrated, a lost to the handover in round 2
    assert got["migrated"] == 1
    assert got["dwell_median_s"] == 4.0                 # of 2, 4, 6 (the infinite window is left out)
    assert np.isclose(got["dwell_p10_s"], 2.4)          # numpy's linear percentile of 2, 4, 6
    assert got["upload_mean_s"] == 6.0                  # 4 and 8; the missing and the zero upload are left out
    assert (got["lost_handover"], got["lost_left"], got["lost_deadline"]) == (1, 1, 1)


def test_a_folder_without_a_plan_is_one_line(tmp_path):
    import subprocess
    r = subprocess.run([sys.executable, str(REPO / "tools" / "fleet_comparison.py"), "--fleet", str(tmp_path),
                        "--a10kw", str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "plan.json" in r.stderr, r.stderr
