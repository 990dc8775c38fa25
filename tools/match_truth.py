"""Edge precision and recall of the map matchers on a truth set made by SUMO (iovsim.mobility.match_truth).

    python tools/match_truth.py [--net NET.net.xml] [--vehicles 30] [--seeds 1,2,3] [--sample 30] [--noise 10]
                                [--matcher hmm,sumolib] [--out DIR]

Without --net the San Francisco net is built from `$IOVSIM_SHARED_DATA` (default ../shared/data beside
the repository): maps/sanfrancisco_osm/SanFranciscoFiltered.osm (OSM, ODbL). For each seed SUMO drives
`--vehicles` random routes (at least --min-distance long), every vehicle is sampled every --sample
seconds with --noise metres of Gaussian noise on x and y, and each matcher's edges are compared with
the edges driven between the first and the last sample. Prints one line per seed and matcher, and the
totals over the seeds.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sf_net(out: Path) -> Path:
    from iovsim.mobility.osm import build_net

    data = Path(os.environ.get("IOVSIM_SHARED_DATA", REPO.parent / "shared" / "data"))
    osm = data / "maps" / "sanfrancisco_osm" / "SanFranciscoFiltered.osm"
    if not osm.exists():
        raise SystemExit(f"match_truth: {osm} not found (set IOVSIM_SHARED_DATA, or give --net)")
    return build_net(osm, out / "sf.net.xml")


def run(net_path: Path, work: Path, *, seeds: list[int], vehicles: int, sample_s: float, noise_m: float,
        min_distance_m: float, matchers: list[str]) -> dict:
    from iovsim.mobility.match_truth import evaluate, make_truth_set
    from iovsim.mobility.net import load_net

    net = load_net(net_path)
    totals = {m: {"correct_edges": 0, "matched_edges": 0, "true_edges": 0, "seconds": 0.0} for m in matchers}
    for seed in seeds:
        truth = make_truth_set(net_path, work / f"seed{seed}", vehicles=vehicles, seed=seed, sample_s=sample_s,
                               noise_m=noise_m, min_distance_m=min_distance_m)
        for m in matchers:
            started = time.perf_counter()
            r = evaluate(net, truth, matcher=m)
            took = time.perf_counter() - started
            print(f"seed {seed} {m:8s} vehicles {r['vehicles']:3d} samples {sum(len(t.time_s) for t in truth):5d} "
                  f"true edges {r['true_edges']:5d} precision {r['precision']:.3f} recall {r['recall']:.3f} "
                  f"truncated {r['truncated']} ({took:.1f} s)")
            for k in ("correct_edges", "matched_edges", "true_edges"):
                totals[m][k] += r[k]
            totals[m]["seconds"] += took
    for m, t in totals.items():
        print(f"all seeds {m:8s} precision {t['correct_edges'] / max(t['matched_edges'], 1):.3f} "
              f"recall {t['correct_edges'] / max(t['true_edges'], 1):.3f} ({t['seconds']:.1f} s matching)")
    return totals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", help="SUMO net (default: the San Francisco net built from the shared OSM extract)")
    ap.add_argument("--vehicles", type=int, default=30)
    ap.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (routes, sampling phase and noise)")
    ap.add_argument("--sample", type=float, default=30.0, help="seconds between GPS samples")
    ap.add_argument("--noise", type=float, default=10.0, help="Gaussian noise on x and on y, metres")
    ap.add_argument("--min-distance", type=float, default=2000.0, help="shortest route, metres (randomTrips)")
    ap.add_argument("--matcher", default="hmm,sumolib", help="comma-separated: hmm, sumolib")
    ap.add_argument("--out", help="folder for the nets, routes and FCD (default: a temporary folder)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="iovsim_match_truth_") as tmp:
        work = Path(a.out) if a.out else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        net = Path(a.net) if a.net else sf_net(work)
        run(net, work, seeds=[int(s) for s in a.seeds.split(",")], vehicles=a.vehicles, sample_s=a.sample,
            noise_m=a.noise, min_distance_m=a.min_distance, matchers=a.matcher.split(","))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
