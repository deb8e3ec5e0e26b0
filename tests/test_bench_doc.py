"""docs/benchmarks.md is shared: each benchmark script replaces its own sections and keeps every other one."""

from __future__ import annotations

import pytest

from simulators.bench_doc import keep_other_sections, replace_section, write_section

DOCUMENT = "# Benchmarks\n\nintro\n\n## Ingestion\n\n### PostgreSQL\n\nfigures\n\n## Live stream fan-out\n\nold\n\n## Later\n\nkept\n"


def test_section_replaced_in_place():
    text = replace_section(DOCUMENT, "## Live stream fan-out\n\nnew\n")

    assert text == "# Benchmarks\n\nintro\n\n## Ingestion\n\n### PostgreSQL\n\nfigures\n\n## Live stream fan-out\n\nnew\n\n## Later\n\nkept\n"


def test_missing_section_appended():
    text = replace_section("# Benchmarks\n\nintro\n", "## Backup and restore\n\nrows\n")

    assert text == "# Benchmarks\n\nintro\n\n## Backup and restore\n\nrows\n"


def test_section_appended_after_one_without_blank_line():
    text = replace_section("# Benchmarks\n\n## Ingestion\n\nfigures\n", "## Replay\n\nrun time\n")

    assert text == "# Benchmarks\n\n## Ingestion\n\nfigures\n\n## Replay\n\nrun time\n"


def test_last_section_replaced():
    text = replace_section(DOCUMENT, "## Later\n\nreplaced\n")

    assert text.endswith("## Live stream fan-out\n\nold\n\n## Later\n\nreplaced\n")
    assert text.count("## Later") == 1


def test_section_without_heading_refused():
    with pytest.raises(ValueError, match="must start with a '## ' heading"):
        replace_section(DOCUMENT, "### PostgreSQL\n\nfigures\n")


def test_write_section_creates_missing_file(tmp_path):
    path = tmp_path / "benchmarks.md"

    write_section(path, "## SDK outbox drain\n\n3.2 s\n")
    write_section(path, "## SDK outbox drain\n\n3.0 s\n")

    assert path.read_text() == "# Benchmarks\n\n## SDK outbox drain\n\n3.0 s\n"


def test_full_rewrite_keeps_other_scripts_sections(tmp_path):
    path = tmp_path / "benchmarks.md"
    path.write_text(DOCUMENT)

    text = keep_other_sections("# Benchmarks\n\nnew intro\n\n## Ingestion\n\nnew figures\n", path)

    assert text == (
        "# Benchmarks\n\nnew intro\n\n## Ingestion\n\nnew figures\n\n"
        "## Live stream fan-out\n\nold\n\n## Later\n\nkept\n"
    )


def test_full_rewrite_without_old_file(tmp_path):
    assert keep_other_sections("# Benchmarks\n", tmp_path / "absent.md") == "# Benchmarks\n"
