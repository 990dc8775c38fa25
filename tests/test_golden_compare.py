"""The golden comparison itself: what it lets through (last-digit rounding of another CPU) and what
it must catch (a changed status, rank or count; a float beyond its tolerance), with the column and
the size of the difference in the message."""
from golden_compare import compare_csv, identical_bytes

HEADER = "round,vehicle,rank,status,latency_s,loss,accuracy,test_samples\n"
ROW = "1,truck5,8,ok,0.435073,1.06945,0.483333,60\n"


def _pair(tmp_path, golden_row, actual_row):
    g, a = tmp_path / "golden.csv", tmp_path / "actual.csv"
    g.write_text(HEADER + golden_row)
    a.write_text(HEADER + actual_row)
    return a, g


def test_last_printed_digit_of_another_cpu_passes(tmp_path):
    # the AVX-512 run of the golden config: latency_s 0.435074 against the AVX2 golden 0.435073
    assert compare_csv(*_pair(tmp_path, ROW, ROW.replace("0.435073", "0.435074"))) == []
    assert compare_csv(*_pair(tmp_path, ROW, ROW.replace("1.06945", "1.06946"))) == []


def test_float_beyond_its_tolerance_names_column_and_size(tmp_path):
    [m] = compare_csv(*_pair(tmp_path, ROW, ROW.replace("0.435073", "0.435573")))
    assert (m.row, m.column, m.golden, m.actual) == (1, "latency_s", "0.435073", "0.435573")
    assert "relative 0.00115" in str(m) and "latency_s" in str(m)
    [m] = compare_csv(*_pair(tmp_path, ROW, ROW.replace("1.06945", "1.07945")))
    assert m.column == "loss"


def test_discrete_columns_must_be_equal(tmp_path):
    for old, new, col in (("ok", "lost_handover", "status"), (",8,", ",4,", "rank"), ("truck5", "truck6", "vehicle")):
        [m] = compare_csv(*_pair(tmp_path, ROW, ROW.replace(old, new)))
        assert m.column == col and "must be equal" in m.detail


def test_accuracy_may_move_by_one_test_sample_not_two(tmp_path):
    one, two = 0.483333 + 1 / 60, 0.483333 + 2 / 60
    assert compare_csv(*_pair(tmp_path, ROW, ROW.replace("0.483333", f"{one:.6g}"))) == []
    [m] = compare_csv(*_pair(tmp_path, ROW, ROW.replace("0.483333", f"{two:.6g}")))
    assert m.column == "accuracy" and "one test sample of 60" in m.detail


def test_row_count_and_header(tmp_path):
    a, g = _pair(tmp_path, ROW, ROW + ROW)
    assert [m.column for m in compare_csv(a, g)] == ["(rows)"]
    g.write_text(HEADER.replace("loss", "loss_x") + ROW)
    assert [m.column for m in compare_csv(a, g)] == ["(header)"]


def test_identical_bytes_points_at_the_first_line(tmp_path):
    a, g = _pair(tmp_path, ROW, ROW.replace("0.435073", "0.435074"))
    assert identical_bytes(g, g) is None
    assert "line 2" in identical_bytes(a, g)
