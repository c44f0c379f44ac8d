"""Fenced code blocks of the Markdown docs, and the marker policy that says which of them the docs test runs.

Pure: takes a document's text (and the name to report it under), returns blocks and verdicts; no files are
read here. The contract (shared by every docs author and tests/integration/test_docs.py):

- a block whose info string is exactly `sh runnable` is run;
- every other shell-language block (info string starting with sh, bash, shell or console) must be marked
  `sh norun <reason>`, with a reason;
- other languages (yaml, json, text, ...) are not commands and carry no marker.

Fences follow CommonMark closely enough for docs: ``` or ~~~, three or more; the closing fence uses the same
character, is at least as long and carries no info string; an opening fence may be indented (a block inside a
list item), and that indentation is removed from the block's lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

RUNNABLE = "sh runnable"
NORUN = "sh norun"
SHELL_LANGUAGES = ("sh", "bash", "shell", "console")

_OPENING = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced code block: `line` is the 1-based line of its opening fence."""

    file: str
    line: int
    info: str
    body: str
    closed: bool = True
    not_a_fence: bool = False  # a ```sh line whose info string holds a backtick: Markdown shows it as text

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def language(self) -> str:
        return self.info.split(maxsplit=1)[0].lower() if self.info else ""

    @property
    def is_shell(self) -> bool:
        # "starting with": `shell-session`, `bash` and `console` count, and so does `sh{.x}`-like noise.
        return self.language.startswith(SHELL_LANGUAGES)


def _closes(line: str, fence: str) -> bool:
    """A closing fence: the opening's character only, at least as many; indented any amount, since a
    block inside a list item is indented as deep as the item's text."""
    stripped = line.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _dedent(line: str, width: int) -> str:
    """Remove up to `width` columns of leading whitespace (the opening fence's indentation)."""
    body = line.lstrip(" \t")
    lead = line[: len(line) - len(body)].expandtabs(4)
    return lead[min(width, len(lead)) :] + body


def parse_blocks(text: str, file: str) -> list[Block]:
    """Every fenced code block of `text`, in document order. A fence left open runs to the end of the
    document (as in CommonMark); such a block has `closed=False`, which the policy reports."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _OPENING.match(lines[i])
        if match is None:
            i += 1
            continue
        fence, info = match["fence"], match["info"].strip()
        if fence[0] == "`" and "`" in info:
            # Inline code such as ```x``` on one line: not a fence (CommonMark forbids backticks here). One
            # that looks like a marked shell block is a typo (a `norun` reason quoting code) the policy reports.
            words = info.split()
            if words and (words[0].lower().startswith(SHELL_LANGUAGES) or {"runnable", "norun"} & set(words)):
                blocks.append(Block(file=file, line=i + 1, info=info, body="", not_a_fence=True))
            i += 1
            continue
        width = len(match["indent"].expandtabs(4))
        start, body = i + 1, []
        i += 1
        closed = False
        while i < len(lines):
            if _closes(lines[i], fence):
                closed = True
                i += 1
                break
            body.append(_dedent(lines[i], width))
            i += 1
        text_of_block = "\n".join(body) + ("\n" if body else "")
        blocks.append(Block(file=file, line=start, info=info, body=text_of_block, closed=closed))
    return blocks


class Kind(Enum):
    RUNNABLE = "runnable"
    NORUN = "norun"
    OTHER = "other"  # not a shell block: not a command, no marker
    VIOLATION = "violation"


@dataclass(frozen=True, slots=True)
class Verdict:
    block: Block
    kind: Kind
    reason: str = ""  # a norun block's reason, or what is wrong with a violation


def classify(block: Block) -> Verdict:
    """What the docs test does with `block`, or why the block breaks the contract."""
    if not block.closed:
        return Verdict(block, Kind.VIOLATION, "the fence is never closed")
    if block.not_a_fence:
        return Verdict(
            block, Kind.VIOLATION, "a backtick in the info string makes this line text, not a fence: drop it"
        )
    info = block.info
    if info == RUNNABLE:
        return Verdict(block, Kind.RUNNABLE)
    words = info.split(maxsplit=2)
    if len(words) >= 2 and words[0] == "sh" and words[1] == "norun":
        reason = words[2].strip() if len(words) == 3 else ""
        if not reason:
            return Verdict(block, Kind.VIOLATION, f"`{NORUN}` needs a reason: `{NORUN} <why it cannot run>`")
        return Verdict(block, Kind.NORUN, reason)
    if block.is_shell:
        return Verdict(
            block,
            Kind.VIOLATION,
            f"shell block with info string {info!r}: mark it `{RUNNABLE}` or `{NORUN} <reason>`",
        )
    if "runnable" in words or "norun" in words:
        # `bash runnable` or `yaml norun x`: a marker on a block the runner would ignore is a mistake.
        return Verdict(block, Kind.VIOLATION, f"marker on a non-`sh` block {info!r}: only `sh` blocks run")
    return Verdict(block, Kind.OTHER)


def classify_document(text: str, file: str) -> list[Verdict]:
    return [classify(b) for b in parse_blocks(text, file)]
