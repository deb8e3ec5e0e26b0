"""docs/benchmarks.md is shared by the benchmark scripts: each script owns the `## ` sections it writes.

A script replaces its own sections and leaves every other section as it is,
so running one benchmark never drops the figures of another.
"""

from __future__ import annotations

from pathlib import Path

EMPTY_DOCUMENT = "# Benchmarks\n"


def split_sections(document: str) -> tuple[str, list[tuple[str, str]]]:
    """Return the text before the first `## ` heading and each section as (heading line, whole text)."""
    lines = document.splitlines(keepends=True)
    starts = [index for index, line in enumerate(lines) if line.startswith("## ")]
    if not starts:
        return document, []
    preamble = "".join(lines[: starts[0]])
    sections = []
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else len(lines)
        sections.append((lines[start].rstrip("\n"), "".join(lines[start:end])))
    return preamble, sections


def replace_section(document: str, section: str) -> str:
    """Put `section`, which starts with its `## ` heading, in place of the section of that heading, or append it."""
    heading = section.splitlines()[0]
    if not heading.startswith("## "):
        raise ValueError(f"a section must start with a '## ' heading, got {heading!r}")
    block = section.rstrip("\n") + "\n\n"
    preamble, sections = split_sections(document)
    texts = [block if name == heading else text.rstrip("\n") + "\n\n" for name, text in sections]
    if heading not in (name for name, _ in sections):
        texts.append(block)
        preamble = preamble.rstrip("\n") + "\n\n"
    return (preamble + "".join(texts)).rstrip("\n") + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace or append `section` in the Markdown file at `path`, creating the file when it is missing."""
    document = path.read_text(encoding="utf-8") if path.exists() else EMPTY_DOCUMENT
    path.write_text(replace_section(document, section), encoding="utf-8")


def keep_other_sections(report: str, path: Path) -> str:
    """Return `report` followed by the sections of the file at `path` whose headings `report` does not have."""
    if not path.exists():
        return report
    _, written = split_sections(report)
    own = {name for name, _ in written}
    _, existing = split_sections(path.read_text(encoding="utf-8"))
    kept = [text.rstrip("\n") + "\n" for name, text in existing if name not in own]
    if not kept:
        return report
    return report.rstrip("\n") + "\n\n" + "\n".join(kept)
