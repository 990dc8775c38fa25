"""The round's transfer as a pure function, on made-up link views (no SUMO, no channel).

Every job below: download 1000 bits at 1000 bit/s (1 s), 2 s of compute, upload at 1000 bit/s,
1 s simulation steps from t0 = 0, compute energy 30 J for the whole training, 0.2 W transmit power.
"""
import math

import pytest

from iovsim.engine.transfer import Backhaul, LinkView, TransferJob, round_latency_s, run_transfer


def job(vid="v", rsu=1, up_bits=2500.0, compute_s=2.0, mode="lose", compute_energy_j=30.0):
    return TransferJob(vehicle_id=vid, rsu=rsu, tx_power_w=0.2, bandwidth_hz=1e6, down_bits=1000.0,
                       compute_s=compute_s, up_bits=up_bits, compute_energy_j=compute_energy_j, mode=mode)


def scripted(serving_at, end_after=None, seen=None):
    """A step callback: at step n (time n s) the vehicles serving_at(n) maps to RSUs, 1000 bit/s each way."""
    t = [0]

    def step(phases):
        if seen is not None:
            seen.append(dict(phases))
        if end_after is not None and t[0] >= end_after:
            return None
        t[0] += 1
        serving = serving_at(t[0])
        return LinkView(float(t[0]), serving, {v: 1000.0 for v in serving}, {v: 1000.0 for v in serving})

    return step


def test_delivered_update_times_and_energy():
    out, = run_transfer([job()], 0.0, 100.0, scripted(lambda n: {"v": 1}))
    # t 0-1 download, 1-3 compute, 3-5.5 upload (2500 bits)
    assert out.status == "ok" and out.phase == "done"
    assert (out.download_time_s, out.compute_time_s, out.upload_time_s) == pytest.approx((1.0, 2.0, 2.5))
    assert out.done_at_s == pytest.approx(5.5)
    assert out.energy_j == pytest.approx(30.0 + 0.2 * 2.5)
    assert round_latency_s([out], 0.0) == pytest.approx(5.5)


def test_handover_mid_upload_loses_the_update():
    # Handed over to RSU 2 at t = 5: its upload ran 3-4 only (the step 4-5 ends under the new RSU).
    out, = run_transfer([job(up_bits=3000.0)], 0.0, 100.0, scripted(lambda n: {"v": 1 if n < 5 else 2}))
    assert out.status == "lost_handover" and out.done_at_s == 5.0
    assert (out.download_time_s, out.compute_time_s, out.upload_time_s) == pytest.approx((1.0, 2.0, 1.0))
    # the whole compute was spent, and 1 s of radio time
    assert out.energy_j == pytest.approx(30.0 + 0.2 * 1.0)


def test_leaving_the_map_loses_the_update():
    out, = run_transfer([job()], 0.0, 100.0, scripted(lambda n: {"v": 1} if n < 3 else {}))
    assert out.status == "lost_left" and out.done_at_s == 3.0
    assert (out.download_time_s, out.compute_time_s, out.upload_time_s) == pytest.approx((1.0, 1.0, 0.0))
    assert out.energy_j == pytest.approx(30.0 * 1.0 / 2.0)  # half the compute, no upload


def test_deadline_cuts_the_round():
    out, = run_transfer([job()], 0.0, 2.0, scripted(lambda n: {"v": 1}))
    assert out.status == "lost_deadline" and out.done_at_s == 2.0 and out.phase == "train"
    assert out.energy_j == pytest.approx(15.0)


def test_end_of_simulation_is_a_deadline_loss_without_time():
    out, = run_transfer([job()], 0.0, 100.0, scripted(lambda n: {"v": 1}, end_after=3))
    assert out.status == "lost_deadline" and math.isnan(out.done_at_s)
    assert out.upload_time_s == 0.0 and out.energy_j == pytest.approx(30.0)
    assert round_latency_s([out], 0.0) == 0.0


def test_participants_are_independent_and_phases_are_reported():
    seen = []
    jobs = [job("a"), job("b", rsu=3, compute_s=0.5)]
    # b is handed over at t = 3; a is delivered as alone.
    outs = run_transfer(jobs, 0.0, 100.0, scripted(lambda n: {"a": 1, "b": 3 if n < 3 else 4}, seen=seen))
    assert [o.status for o in outs] == ["ok", "lost_handover"]
    assert outs[0].done_at_s == pytest.approx(5.5)
    # b: download 0-1, compute 1-1.5, upload 1.5-2 (500 of its bits); the handover is seen at t = 3
    assert outs[1].done_at_s == 3.0
    assert (outs[1].compute_time_s, outs[1].upload_time_s) == pytest.approx((0.5, 0.5))
    assert outs[1].energy_j == pytest.approx(30.0 + 0.2 * 0.5)
    assert seen[:4] == [{"a": "download", "b": "download"}, {"a": "train", "b": "train"},
                        {"a": "train", "b": "upload"}, {"a": "upload", "b": "lost"}]
    assert round_latency_s(outs, 0.0) == pytest.approx(5.5)


def test_no_participant_steps_nothing():
    calls = []
    assert run_transfer([], 0.0, 10.0, lambda phases: calls.append(1)) == []
    assert calls == []


# ----------------------------------------------------------------------------- transfer modes

def test_default_mode_is_lose_and_the_update_counts_at_its_first_rsu():
    assert job().mode == "lose"
    out, = run_transfer([job()], 0.0, 100.0, scripted(lambda n: {"v": 1}))
    assert out.rsu == 1 and out.handovers == 0 and out.forwarded_bits == 0.0


def test_migrate_mid_upload_forwards_the_uploaded_part_and_continues_at_the_new_rsu():
    # As test_handover_mid_upload_loses_the_update, in migrate mode: upload 3-4 at RSU 1 (1000 bits); the
    # step 4-5 shows RSU 2, so from t = 4 RSU 1 forwards its 1000 bits and the vehicle sends the other 2000
    # bits to RSU 2 over 4-6. A fast backhaul (0.5 s + 1000 bits at 1000 bit/s: arrives at 5.5) hides.
    steps = lambda n: {"v": 1 if n < 5 else 2}  # noqa: E731
    out, = run_transfer([job(up_bits=3000.0, mode="migrate")], 0.0, 100.0, scripted(steps), Backhaul(0.5, 1000.0))
    assert out.status == "migrated" and out.rsu == 2 and out.handovers == 1 and out.forwarded_bits == 1000.0
    assert (out.download_time_s, out.compute_time_s, out.upload_time_s) == pytest.approx((1.0, 2.0, 3.0))
    assert out.done_at_s == pytest.approx(6.0)
    # the vehicle transmitted 3 s in all; forwarding costs it nothing
    assert out.energy_j == pytest.approx(30.0 + 0.2 * 3.0)
    # a slow backhaul (2.5 s latency): the forwarded part arrives last, at 4 + 2.5 + 1 = 7.5
    out, = run_transfer([job(up_bits=3000.0, mode="migrate")], 0.0, 100.0, scripted(steps), Backhaul(2.5, 1000.0))
    assert out.status == "migrated" and out.done_at_s == pytest.approx(7.5)
    assert out.energy_j == pytest.approx(30.0 + 0.2 * 3.0)
    assert round_latency_s([out], 0.0) == pytest.approx(7.5)
    # ... and when it arrives after the deadline the update is lost
    out, = run_transfer([job(up_bits=3000.0, mode="migrate")], 0.0, 7.0, scripted(steps), Backhaul(2.5, 1000.0))
    assert out.status == "lost_deadline" and out.done_at_s == 7.0


def test_migrate_during_compute_forwards_nothing_and_pingpong_forwards_twice():
    out, = run_transfer([job(mode="migrate")], 0.0, 100.0, scripted(lambda n: {"v": 1 if n < 2 else 4}),
                        Backhaul(10.0, 1.0))
    # handed over while training: nothing was uploaded, so the slow backhaul does not matter
    assert out.status == "migrated" and out.rsu == 4 and out.forwarded_bits == 0.0
    assert out.done_at_s == pytest.approx(5.5) and out.energy_j == pytest.approx(30.0 + 0.2 * 2.5)
    # 1 -> 2 -> 1 during the upload: RSU 1 forwards 1000 bits at t = 4 (arrive 4.2), RSU 2 then holds 2000
    # bits and forwards them from t = 5 (arrive 5 + 0.1 + 0.2 = 5.3); the vehicle ends at 6.5 (3500 bits)
    out, = run_transfer([job(up_bits=3500.0, mode="migrate")], 0.0, 100.0,
                        scripted(lambda n: {"v": 2 if n == 5 else 1}), Backhaul(0.1, 10000.0))
    assert out.status == "migrated" and out.rsu == 1 and out.handovers == 2
    assert out.forwarded_bits == pytest.approx(3000.0) and out.done_at_s == pytest.approx(6.5)


def test_migrate_waits_without_coverage_and_still_loses_a_vehicle_that_leaves():
    # no RSU during the step 3-4: the upload waits (no radio time, no energy); RSU 2 from t = 4
    serving = {4: -1}
    out, = run_transfer([job(mode="migrate")], 0.0, 100.0, scripted(lambda n: {"v": serving.get(n, 1 if n < 4 else 2)}))
    assert out.status == "migrated" and out.rsu == 2 and out.forwarded_bits == 0.0
    assert out.upload_time_s == pytest.approx(2.5) and out.done_at_s == pytest.approx(6.5)
    assert out.energy_j == pytest.approx(30.0 + 0.2 * 2.5)
    # compute goes on without coverage: -1 during 1-3 changes nothing for the device
    out, = run_transfer([job(mode="migrate")], 0.0, 100.0, scripted(lambda n: {"v": -1 if n in (2, 3) else 1}))
    assert out.status == "ok" and out.done_at_s == pytest.approx(5.5) and out.compute_time_s == pytest.approx(2.0)
    out, = run_transfer([job(mode="migrate")], 0.0, 100.0, scripted(lambda n: {"v": 1 if n < 2 else 2} if n < 4 else {}))
    assert out.status == "lost_left" and out.done_at_s == 4.0


def test_early_upload_delivers_the_cut_job_as_early_and_is_lost_like_lose_otherwise():
    # the plan cut training to half its steps: 1 s of compute, half the compute energy
    early = job(compute_s=1.0, compute_energy_j=15.0, mode="early_upload")
    out, = run_transfer([early], 0.0, 100.0, scripted(lambda n: {"v": 1 if n < 6 else 2}))
    # download 0-1, compute 1-2, upload 2-4.5: delivered before the handover at t = 6
    assert out.status == "early" and out.rsu == 1 and out.done_at_s == pytest.approx(4.5)
    assert (out.download_time_s, out.compute_time_s, out.upload_time_s) == pytest.approx((1.0, 1.0, 2.5))
    assert out.energy_j == pytest.approx(15.0 + 0.2 * 2.5)
    out, = run_transfer([early], 0.0, 100.0, scripted(lambda n: {"v": 1 if n < 4 else 2}))
    assert out.status == "lost_handover" and out.done_at_s == 4.0 and out.rsu == 1


def test_modes_side_by_side_phases_for_display():
    seen = []
    jobs = [job("a"), job("m", mode="migrate"), job("e", compute_s=1.0, mode="early_upload")]
    outs = run_transfer(jobs, 0.0, 100.0, scripted(lambda n: {"a": 1 if n < 5 else 2, "m": 1 if n < 5 else 2,
                                                               "e": 1}, seen=seen))
    assert [o.status for o in outs] == ["lost_handover", "migrated", "early"]
    assert seen[5] == {"a": "lost", "m": "upload", "e": "early"}
    assert len(seen) == 6  # m, the last, was delivered in the step 5-6
