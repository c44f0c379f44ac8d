"""Every relative link of README.md and docs/*.md points at a file of the repository, and every doc is
reachable from the README: a page nobody links to is a page nobody reads, and a renamed file must not leave
dead links behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS]
# [text](target) outside code: inline links only (the docs use no reference-style links).
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^\s*(```|~~~).*?^\s*\1", re.MULTILINE | re.DOTALL)


def links(page: Path) -> list[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code may show link syntax as an example
    return [m[1] for m in _LINK.finditer(text)]


def local_target(page: Path, target: str) -> Path | None:
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
        return None  # a URL or an anchor within the page
    return (page.parent / target.split("#", 1)[0]).resolve()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    dead = [t for t in links(page) if (p := local_target(page, t)) is not None and not p.exists()]
    assert dead == [], f"{page.relative_to(ROOT)}: links to missing files: {dead}"


def test_every_doc_is_linked_from_the_readme() -> None:
    linked = {local_target(ROOT / "README.md", t) for t in links(ROOT / "README.md")}
    orphans = [d.relative_to(ROOT).as_posix() for d in DOCS if d.resolve() not in linked]
    assert orphans == [], f"docs the README does not link to: {orphans}"


def test_the_link_finder_sees_links_and_skips_code(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("See [a](a.md) and `[b](b.md)`.\n\n```text\n[c](c.md)\n```\n[d](https://x/y) [e](#top)\n")
    assert links(page) == ["a.md", "https://x/y", "#top"]
    assert local_target(page, "a.md#x") == (tmp_path / "a.md").resolve()
    assert local_target(page, "https://x/y") is None
