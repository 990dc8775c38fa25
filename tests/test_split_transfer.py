"""Split training's per-step protocol inside the round's transfer, on made-up link views (no SUMO).

Every split job below (unless said otherwise): one step = device 100 FLOPs at 100 FLOP/s (1 s), 1000
bits up at 1000 bit/s (1 s), 400 FLOPs on a 400 FLOP/s edge server (1 s alone), 500 bits down at
1000 bit/s (0.5 s): 3.5 s. The device's part of the adapter is 500 bits (0.5 s down first, 0.5 s up
last); 2 local steps; 0.01 J per device FLOP; 0.2 W transmit power; 1 s simulation steps from t0 = 0.
Alone: download 0-0.5, step 1 0.5-4 (device 0.5-1.5, up 1.5-2.5, edge 2.5-3.5, down 3.5-4),
step 2 4-7.5, upload 7.5-8.
"""
import numpy as np
import pytest

from iovsim.costs.split import DEVICE, DOWN, EDGE, UP, Segment, round_cost
from iovsim.engine.split_transfer import EdgeServers, SplitWork
from iovsim.engine.transfer import Backhaul, LinkView, TransferJob, run_transfer

SEGMENTS = (Segment(DEVICE, 100.0, "device"), Segment(UP, 1000.0, "activations"), Segment(EDGE, 400.0, "edge"),
            Segment(DOWN, 500.0, "pooled"))
EDGE_400 = EdgeServers(flops_per_s=400.0, power_w=50.0)


def split_job(vid="v", rsu=1, mode="lose", device_flops_per_s=100.0, steps=2):
    work = SplitWork(SEGMENTS, steps, device_flops_per_s, 0.01, state_bits=500.0, server_state_bits=1000.0,
                     server_adapter_bits=300.0)
    return TransferJob(vid, rsu, tx_power_w=0.2, bandwidth_hz=1e6, down_bits=500.0, compute_s=2.0, up_bits=500.0,
                       compute_energy_j=2.0, mode=mode, split=work)


def scripted(serving_at, seen=None):
    """At step n (time n s) the vehicles serving_at(n) maps to RSUs, 1000 bit/s each way."""
    t = [0]

    def step(phases):
        if seen is not None:
            seen.append(dict(phases))
        t[0] += 1
        serving = serving_at(t[0])
        return LinkView(float(t[0]), serving, {v: 1000.0 for v in serving}, {v: 1000.0 for v in serving})

    return step


def test_one_vehicle_by_hand_and_as_the_planner_prices_it():
    seen = []
    out, = run_transfer([split_job()], 0.0, 100.0, scripted(lambda n: {"v": 1}, seen), edge=EDGE_400)
    assert out.status == "ok" and out.done_at_s == pytest.approx(8.0) and out.steps_done == 2
    assert out.compute_time_s == pytest.approx(2.0)      # device: 2 x 1 s
    assert out.upload_time_s == pytest.approx(2.5)       # activations 2 x 1 s + the device's update 0.5 s
    assert out.download_time_s == pytest.approx(1.5)     # the device's part 0.5 s + pooled outputs 2 x 0.5 s
    assert (out.bits_up, out.bits_down) == pytest.approx((2500.0, 1500.0))
    assert (out.edge_compute_s, out.edge_wait_s, out.edge_energy_j) == pytest.approx((2.0, 0.0, 100.0))
    assert out.energy_j == pytest.approx(200 * 0.01 + 0.2 * 2.5)   # device FLOPs + radio, not the edge
    # the phase each step ended in: 1 train (device 0.5-1.5), 2 split_up, 3 split_edge, 4 train (step 2)
    assert [s.get("v") for s in seen[1:5]] == ["train", "split_up", "split_edge", "train"]
    # the planner's formula (costs.split.round_cost) at the same rates: the same time and energy
    plan = round_cost(SEGMENTS, 2, 500.0, device_flops_per_s=100.0, energy_per_flop_j=0.01, tx_power_w=0.2,
                      up_rate_bps=1000.0, down_rate_bps=1000.0, edge_flops_per_s=400.0)
    assert float(plan.time_s) == pytest.approx(out.done_at_s) and float(plan.energy_j) == pytest.approx(out.energy_j)
    assert float(plan.uplink_bits) == pytest.approx(out.bits_up) and float(plan.edge_s) == pytest.approx(2.0)


def test_handover_mid_step_loses_the_update_in_lose_mode():
    # RSU 2 shows at t = 3: step 2-3 is spent under it, so the job is lost at 3 with the upload of
    # the activations half done (1.5-2).
    out, = run_transfer([split_job()], 0.0, 100.0, scripted(lambda n: {"v": 1 if n < 3 else 2}), edge=EDGE_400)
    assert out.status == "lost_handover" and out.done_at_s == 3.0 and out.steps_done == 0
    assert (out.compute_time_s, out.upload_time_s, out.bits_up) == pytest.approx((1.0, 0.5, 500.0))
    assert out.energy_j == pytest.approx(100 * 0.01 + 0.2 * 0.5)


def test_handover_mid_step_migrates_the_edge_state_and_restarts_the_step():
    # At t_prev = 2 the activations are half up: the old RSU forwards the edge's adapter + AdamW state
    # (1000 bits; 0.5 s + 1 s over the backhaul: there at 3.5) and the step restarts at the
    # activations' upload to RSU 2 (2-3); the edge waits for the state (3-3.5), computes 3.5-4.5,
    # down 4.5-5; step 2 5-8.5; upload 8.5-9.
    out, = run_transfer([split_job(mode="migrate")], 0.0, 100.0, scripted(lambda n: {"v": 1 if n < 3 else 2}),
                        Backhaul(0.5, 1000.0), EDGE_400)
    assert out.status == "migrated" and out.rsu == 2 and out.handovers == 1 and out.forwarded_bits == 1000.0
    assert out.done_at_s == pytest.approx(9.0) and out.steps_done == 2
    assert (out.upload_time_s, out.bits_up) == pytest.approx((3.0, 3000.0))   # the half-sent activations again
    assert (out.edge_compute_s, out.edge_wait_s) == pytest.approx((2.0, 0.5))
    assert out.energy_j == pytest.approx(200 * 0.01 + 0.2 * 3.0)


def test_migration_outside_the_server_bound_part_keeps_the_step():
    # At t_prev = 4 step 2 starts on the device: nothing to redo; the state (there at 5.5) is at the new
    # edge before the step needs it (6), so the round ends as without a handover, at 8.
    out, = run_transfer([split_job(mode="migrate")], 0.0, 100.0, scripted(lambda n: {"v": 1 if n < 5 else 2}),
                        Backhaul(0.5, 1000.0), EDGE_400)
    assert out.status == "migrated" and out.done_at_s == pytest.approx(8.0) and out.edge_wait_s == pytest.approx(0.0)
    assert out.bits_up == pytest.approx(2500.0)


def test_migration_while_uploading_forwards_the_update_part_and_the_edge_adapters():
    # One step, a 2000-bit device part: download 0-2, step 2-5.5, upload 5.5-7.5. RSU 2 shows at t = 7
    # (step 6-7 under it): at 6 the old RSU holds 500 bits of the update and forwards them with the
    # edge's adapters (300 bits): 0.5 + 0.8 s, there at 7.3; the vehicle sends the other 1500 bits
    # 6-7.5 to RSU 2.
    work = SplitWork(SEGMENTS, 1, 100.0, 0.01, state_bits=2000.0, server_state_bits=1000.0, server_adapter_bits=300.0)
    job = TransferJob("v", 1, 0.2, 1e6, 2000.0, 1.0, 2000.0, 1.0, mode="migrate", split=work)
    out, = run_transfer([job], 0.0, 100.0, scripted(lambda n: {"v": 1 if n < 7 else 2}), Backhaul(0.5, 1000.0),
                        EDGE_400)
    assert out.status == "migrated" and out.forwarded_bits == pytest.approx(800.0)
    assert out.done_at_s == pytest.approx(7.5) and out.bits_up == pytest.approx(3000.0)
    # a slow backhaul (800 bits at 100 bit/s from 6): delivered when they arrive, at 14
    out, = run_transfer([job], 0.0, 100.0, scripted(lambda n: {"v": 1 if n < 7 else 2}), Backhaul(0.0, 100.0),
                        EDGE_400)
    assert out.status == "migrated" and out.done_at_s == pytest.approx(14.0)


def test_two_vehicles_on_one_edge_server_share_it():
    # Both reach the edge at 2.5: each gets 200 FLOP/s, 400 FLOPs take 2 s (2.5-4.5); down 4.5-5; step 2
    # 5-9.5 (edge 7-9); upload 9.5-10.
    outs = run_transfer([split_job("a"), split_job("b")], 0.0, 100.0, scripted(lambda n: {"a": 1, "b": 1}),
                        edge=EDGE_400)
    for o in outs:
        assert o.status == "ok" and o.done_at_s == pytest.approx(10.0)
        assert (o.edge_compute_s, o.edge_wait_s) == pytest.approx((2.0, 2.0))   # twice the edge time
    # on two RSUs nobody shares: as alone
    outs = run_transfer([split_job("a"), split_job("b", rsu=2)], 0.0, 100.0, scripted(lambda n: {"a": 1, "b": 2}),
                        edge=EDGE_400)
    assert [o.done_at_s for o in outs] == pytest.approx([8.0, 8.0]) and outs[1].edge_wait_s == pytest.approx(0.0)


def test_processor_sharing_changes_inside_a_simulation_step():
    # b's device is slower (80 FLOP/s: 0.5-1.75), so b reaches the edge at 2.75, a at 2.5. a alone
    # 2.5-2.75 (100 FLOPs), both at 200 FLOP/s 2.75-4.25 (a's last 300), b alone 4.25-4.5 (its last 100).
    outs = run_transfer([split_job("a", steps=1), split_job("b", device_flops_per_s=80.0, steps=1)], 0.0, 100.0,
                        scripted(lambda n: {"a": 1, "b": 1}), edge=EDGE_400)
    a, b = outs
    assert a.done_at_s == pytest.approx(4.25 + 0.5 + 0.5) and b.done_at_s == pytest.approx(4.5 + 0.5 + 0.5)
    assert (a.edge_compute_s, a.edge_wait_s) == pytest.approx((1.0, 0.75))
    assert (b.edge_compute_s, b.edge_wait_s) == pytest.approx((1.0, 0.75))


def test_unsplit_and_split_jobs_in_one_round():
    plain = TransferJob("p", 1, 0.2, 1e6, down_bits=1000.0, compute_s=2.0, up_bits=2500.0, compute_energy_j=30.0)
    outs = run_transfer([plain, split_job()], 0.0, 100.0, scripted(lambda n: {"p": 1, "v": 1}), edge=EDGE_400)
    assert [o.status for o in outs] == ["ok", "ok"]
    assert outs[0].done_at_s == pytest.approx(5.5) and outs[0].energy_j == pytest.approx(30.0 + 0.2 * 2.5)
    assert (outs[0].bits_up, outs[0].bits_down, outs[0].steps_done, outs[0].edge_compute_s) == (2500.0, 1000.0, 0, 0.0)
    assert outs[1].done_at_s == pytest.approx(8.0)


def test_without_coverage_the_radio_waits_and_the_device_and_edge_go_on():
    # migrate mode, no RSU during steps 2-4 (t 1-3): the device computes 0.5-1.5; the activations wait
    # until 3, go up 3-4, edge 4-5, down 5-5.5; step 2 5.5-9; upload 9-9.5.
    out, = run_transfer([split_job(mode="migrate")], 0.0, 100.0, scripted(lambda n: {"v": -1 if 2 <= n <= 3 else 1}),
                        edge=EDGE_400)
    assert out.status == "ok" and out.done_at_s == pytest.approx(9.5) and out.upload_time_s == pytest.approx(2.5)


def test_deadline_and_leaving_the_map():
    out, = run_transfer([split_job()], 0.0, 6.0, scripted(lambda n: {"v": 1}), edge=EDGE_400)
    assert out.status == "lost_deadline" and out.steps_done == 1
    assert out.energy_j == pytest.approx(200 * 0.01 + 0.2 * 2.0)  # device 0.5-1.5 and 4-5; activations twice
    out, = run_transfer([split_job()], 0.0, 100.0, scripted(lambda n: {"v": 1} if n < 4 else {}), edge=EDGE_400)
    assert out.status == "lost_left" and out.done_at_s == 4.0 and out.steps_done == 0
    assert np.isclose(out.edge_compute_s, 0.5)   # the edge ran 2.5-3; the step 3-4 ended off the map


def test_each_rsu_has_its_own_edge_server_speed():
    """rsu.edge_flops_per_s as a list: the job on RSU 1 gets 800 FLOP/s (edge 0.5 s a step, 7 s in all,
    edge energy 50 W x 1 s), the one on RSU 0 400 FLOP/s (as alone above: 8 s, 2 s of edge time)."""
    edge = EdgeServers(flops_per_s=[400.0, 800.0], power_w=50.0)
    a, b = run_transfer([split_job("a", rsu=0), split_job("b", rsu=1)], 0.0, 100.0,
                        scripted(lambda n: {"a": 0, "b": 1}), edge=edge)
    assert (a.done_at_s, a.edge_compute_s, a.edge_energy_j) == pytest.approx((8.0, 2.0, 100.0))
    assert (b.done_at_s, b.edge_compute_s, b.edge_energy_j) == pytest.approx((7.0, 1.0, 50.0))


def test_one_edge_share_rule_for_planner_and_engine():
    from iovsim.costs.split import edge_flops_of, edge_share

    assert edge_share([1, 2, 4, 0]).tolist() == [1.0, 0.5, 0.25, 1.0]
    assert float(edge_flops_of(3e13, 5)) == 3e13 and edge_flops_of([1.0, 2.0, 3.0], [2, 0]).tolist() == [3.0, 1.0]
