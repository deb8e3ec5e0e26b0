"""docs/benchmarks.md sections: each benchmark script replaces its own part and keeps the others'."""

from __future__ import annotations

from simulators.bench_backup import SECTION_END, SECTION_START, write_section
from simulators.bench_ingest import _with_marked_sections


def section(body: str) -> str:
    return f"{SECTION_START}\n## Backup and restore\n\n{body}\n{SECTION_END}\n"


def test_backup_section_appended_then_replaced(tmp_path):
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\ningestion figures\n")

    write_section(report, section("first run"))
    write_section(report, section("second run"))

    text = report.read_text()
    assert text.startswith("# Benchmarks\n\ningestion figures\n\n")
    assert text.count(SECTION_START) == 1
    assert "second run" in text
    assert "first run" not in text


def test_ingest_rewrite_keeps_backup_section(tmp_path):
    report = tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\nold ingestion figures\n\n" + section("backup figures"))

    text = _with_marked_sections("# Benchmarks\n\nnew ingestion figures\n", report)

    assert "old ingestion figures" not in text
    assert "new ingestion figures" in text
    assert text.endswith(section("backup figures"))


def test_ingest_rewrite_without_old_file(tmp_path):
    text = _with_marked_sections("# Benchmarks\n", tmp_path / "absent.md")

    assert text == "# Benchmarks\n"
