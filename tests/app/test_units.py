"""app.units: the human units every page shows (bytes, durations, energies, percentages, counts)."""
import pytest

from app.units import fmt_bytes, fmt_count, fmt_ms, fmt_pct, fmt_uj


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (512, "512 B"), (999, "999 B"), (1000, "0.9766 KB"), (1024, "1 KB"), (1536, "1.5 KB"),
    (311040, "303.8 KB"), (397266, "388 KB"), (4050, "3.955 KB"), (1023900, "999.9 KB"), (1024000, "0.9766 MB"),
    (1758528, "1.677 MB"), (8 << 20, "8 MB"),
    (3 << 30, "3 GB"), (-4050, "-3.955 KB"), (None, "—")])
def test_bytes(n, text):
    assert fmt_bytes(n) == text


@pytest.mark.parametrize("ms, text", [
    (0.0421, "42.1 µs"), (0.5, "500 µs"), (1, "1 ms"), (12.34, "12.34 ms"), (261.54, "261.5 ms"),
    (999.9, "999.9 ms"), (999.96, "1 s"), (1986.26, "1.986 s"), (125000, "125 s"), (None, "—")])
def test_durations_from_ms(ms, text):
    assert fmt_ms(ms) == text


@pytest.mark.parametrize("uj, text", [
    (0.5, "0.5 µJ"), (12.5, "12.5 µJ"), (999.99, "1 mJ"), (51785, "51.8 mJ"), (1334657.5, "1.33 J"),
    (None, "—")])
def test_energies_from_uj(uj, text):
    assert fmt_uj(uj) == text


def test_percentages_and_counts():
    assert fmt_pct(0.9638) == "96.38 %"
    assert fmt_pct(1.0103) == "101.03 %"
    assert fmt_pct(0) == "0.00 %"
    assert fmt_pct(float("inf")) == "—"
    assert fmt_count(24332) == "24,332"
    assert fmt_count(26660752) == "26.66 M"
    assert fmt_count(1814073344) == "1.814 G"


def test_compression_figure_rows_read_as_people_say_them():
    from app.units import figure_rows

    before = {"macs": 44040, "weight_bytes": 62504, "activation_peak_bytes": 1120, "accuracy": 0.9638}
    after = {"macs": 20740, "weight_bytes": 16334, "activation_peak_bytes": 1120, "accuracy": 0.961}
    delta = {k: after[k] - before[k] for k in before}
    rows = {r["key"]: r for r in figure_rows(before, after, delta)}
    assert rows["macs"] == {"figure": "MACs", "before": "44,040", "after": "20,740", "change": "−23,300",
                            "key": "macs"}
    assert rows["weight_bytes"]["before"] == "61.04 KB" and rows["weight_bytes"]["change"] == "−45.09 KB"
    assert rows["activation_peak_bytes"]["change"] == "±0 B"
    assert (rows["accuracy"]["before"], rows["accuracy"]["change"]) == ("96.38 %", "−0.28 pp")
