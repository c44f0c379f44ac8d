"""The docs' fenced-block parser and the `sh runnable` / `sh norun <reason>` marker policy (tests/docs_blocks.py)."""

from __future__ import annotations

import pytest

from tests.docs_blocks import Block, Kind, classify, classify_document, parse_blocks

DOC = """\
# Title

Some text.

```sh runnable
connect-reconciler render configmaps
```

~~~yaml
a: 1
~~~

1. A list item:

   ```sh norun needs a Docker engine
   docker build .
   ```
"""


def test_blocks_in_order_with_lines_info_and_body() -> None:
    blocks = parse_blocks(DOC, "docs/x.md")
    assert [(b.line, b.info) for b in blocks] == [
        (5, "sh runnable"),
        (9, "yaml"),
        (15, "sh norun needs a Docker engine"),
    ]
    assert blocks[0].body == "connect-reconciler render configmaps\n"
    assert blocks[1].body == "a: 1\n"
    assert blocks[0].where == "docs/x.md:5"


def test_indented_fence_loses_its_indentation_but_keeps_deeper_indentation() -> None:
    text = "- item\n\n   ```sh runnable\n   if true; then\n     echo in\n   fi\n   ```\n"
    (block,) = parse_blocks(text, "f.md")
    assert block.body == "if true; then\n  echo in\nfi\n"
    assert block.line == 3


def test_shorter_or_other_fences_inside_a_block_are_content() -> None:
    text = (
        "````markdown\n"
        "```sh\n"
        "echo nested\n"
        "```\n"
        "````\n"
        "~~~text\n"
        "```\n"
        "~~~\n"
        "```sh runnable\n"
        "echo after\n"
        "```\n"
    )
    blocks = parse_blocks(text, "f.md")
    assert [(b.line, b.info) for b in blocks] == [(1, "markdown"), (6, "text"), (9, "sh runnable")]
    assert blocks[0].body == "```sh\necho nested\n```\n"
    assert blocks[1].body == "```\n"
    assert blocks[2].body == "echo after\n"


def test_a_longer_closing_fence_closes_and_a_fence_with_info_does_not() -> None:
    text = "```sh runnable\necho a\n```sh\necho b\n`````\ntail\n"
    (block,) = parse_blocks(text, "f.md")
    assert block.body == "echo a\n```sh\necho b\n"
    assert block.closed


def test_inline_triple_backticks_are_not_a_fence() -> None:
    assert parse_blocks("Run ```make demo``` now.\n", "f.md") == []


def test_a_shell_fence_whose_reason_quotes_code_is_a_violation_not_text() -> None:
    text = "```sh norun needs `make demo` first\nmake demo\n```\n```yaml `x`\na: 1\n```\n"
    blocks = parse_blocks(text, "f.md")
    assert (blocks[0].line, blocks[0].not_a_fence) == (1, True)
    verdict = classify(blocks[0])
    assert verdict.kind is Kind.VIOLATION and "backtick" in verdict.reason
    assert not any(b.not_a_fence and b.info.startswith("yaml") for b in blocks)


def test_an_unclosed_fence_runs_to_the_end_and_is_a_violation() -> None:
    (block,) = parse_blocks("text\n```sh runnable\necho a\n", "f.md")
    assert (block.body, block.closed) == ("echo a\n", False)
    verdict = classify(block)
    assert verdict.kind is Kind.VIOLATION
    assert "never closed" in verdict.reason


def test_empty_block() -> None:
    (block,) = parse_blocks("```sh runnable\n```\n", "f.md")
    assert block.body == ""


def _verdict(info: str) -> tuple[Kind, str]:
    v = classify(Block(file="f.md", line=1, info=info, body="echo\n"))
    return v.kind, v.reason


def test_runnable_is_exactly_sh_runnable() -> None:
    assert _verdict("sh runnable") == (Kind.RUNNABLE, "")
    assert _verdict("sh runnable now")[0] is Kind.VIOLATION
    assert _verdict("bash runnable")[0] is Kind.VIOLATION


def test_norun_needs_a_reason() -> None:
    assert _verdict("sh norun needs a Docker engine") == (Kind.NORUN, "needs a Docker engine")
    kind, reason = _verdict("sh norun")
    assert kind is Kind.VIOLATION
    assert "reason" in reason
    assert _verdict("sh norun   ")[0] is Kind.VIOLATION


@pytest.mark.parametrize("info", ["sh", "bash", "shell", "console", "shell-session", "Bash", "sh $ prompt"])
def test_unmarked_shell_blocks_are_violations(info: str) -> None:
    kind, reason = _verdict(info)
    assert kind is Kind.VIOLATION
    assert "sh runnable" in reason


@pytest.mark.parametrize("info", ["yaml", "json", "text", "", "python", "ini"])
def test_other_languages_carry_no_marker(info: str) -> None:
    assert _verdict(info) == (Kind.OTHER, "")


def test_a_marker_on_a_non_shell_block_is_a_violation() -> None:
    assert _verdict("yaml norun not a command")[0] is Kind.VIOLATION
    assert _verdict("text runnable")[0] is Kind.VIOLATION


def test_classify_document() -> None:
    kinds = [v.kind for v in classify_document(DOC + "\n```bash\nls\n```\n", "f.md")]
    assert kinds == [Kind.RUNNABLE, Kind.OTHER, Kind.NORUN, Kind.VIOLATION]
