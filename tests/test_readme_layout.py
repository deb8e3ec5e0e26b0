"""README.md layout: each folder and each document is listed once."""

from __future__ import annotations

import collections
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_folder_table_rows_unique():
    folders = re.findall(r"^\| `([^`]+/)` \|", README.read_text(), flags=re.MULTILINE)
    repeated = [name for name, count in collections.Counter(folders).items() if count > 1]

    assert folders, "the README has no folder table"
    assert repeated == []


def test_documentation_list_unique():
    documents = re.findall(r"^- `(docs/[^`]+)`:", README.read_text(), flags=re.MULTILINE)
    repeated = [name for name, count in collections.Counter(documents).items() if count > 1]

    assert documents, "the README has no documentation list"
    assert repeated == []


def test_attachments_have_own_section():
    headings = re.findall(r"^## (.+)$", README.read_text(), flags=re.MULTILINE)

    assert "Attachments" in headings
