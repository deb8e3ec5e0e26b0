"""simulators/bench_sdk_drain.py on a small queue: it drains, prints its figures and rewrites only its own section."""

from __future__ import annotations

import pytest

from simulators import bench_sdk_drain


def test_drain_small_queue_writes_section(tmp_path, capsys):
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\n## Other section\n\nkept\n")

    code = bench_sdk_drain.main(["--events", "120", "--orders", "6", "--batch-size", "50", "--markdown", str(report)])

    output = capsys.readouterr().out
    assert code == 0
    assert "SQLite: recorded 120 events offline" in output
    text = report.read_text()
    assert text.startswith("# Benchmarks\n\n## Other section\n\nkept\n")
    assert text.count(bench_sdk_drain.SECTION_HEADING) == 1
    assert "| SQLite | 120 | 50 |" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--orders", "0"], "--orders must be 1 or more"),
        (["--events", "5", "--orders", "10"], "must be at least --orders"),
        (["--batch-size", "501"], "--batch-size must be 1 to 500"),
        (["--no-sqlite"], "leaves nothing to run"),
    ],
)
def test_invalid_options_rejected(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        bench_sdk_drain.parse_args(argv)

    assert exited.value.code == 2
    assert message in capsys.readouterr().err
