"""docs/cli.md is generated from the parser and must be what it says today (`make docs` regenerates it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.entrypoints import reference
from reconciler.entrypoints.cli import build_parser
from reconciler.entrypoints.flags import ENV_PREFIX, FLAGS

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "cli.md"


def test_docs_cli_md_is_the_generated_reference() -> None:
    assert DOC.read_text() == reference.cli_reference(), "docs/cli.md is stale: run `make docs`"


def test_every_flag_subcommand_and_variable_is_in_the_reference() -> None:
    text = reference.cli_reference()
    for flag in FLAGS:
        assert f"`{flag.name}`" in text and f"`{flag.env}`" in text, flag.name
        if flag.default:
            assert f"`{flag.default}`" in text.replace("\\|", "|"), flag.name
        for choice in flag.choices:
            assert f"`{choice}`" in text, (flag.name, choice)
    subcommands = reference._commands(build_parser({}))
    assert set(subcommands) >= {"render", "plan", "apply", "status", "ledger", "approve-deletes", "run"}
    for name in subcommands:
        assert f"| `{name}` |" in text, name
    assert "`--cluster`" in text  # approve-deletes' own flag, not in the shared table


def test_a_flag_shows_the_commands_that_take_it() -> None:
    rows = {
        line.split(" |")[0]: line
        for line in reference.cli_reference().splitlines()
        if line.startswith("| `--")
    }
    assert "| `plan` |" in rows["| `--validate`"] and "`apply`" not in rows["| `--validate`"]
    assert "`run`" in rows["| `--resync-seconds` RESYNC_SECONDS"]
    assert "`render`" not in rows["| `--resync-seconds` RESYNC_SECONDS"]
    assert "| all |" in rows["| `--selector` SELECTOR"]


ENV_READ = re.compile(r"""environ(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]*)["']""")


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    sources = [*(REPO / "reconciler").rglob("*.py"), *(REPO / "hooks").iterdir()]
    read = {name for path in sources if path.is_file() for name in ENV_READ.findall(path.read_text())}
    assert {"POD_NAMESPACE", "K_SINK"} <= read  # the pattern finds what it is meant to
    documented = {name for name, _ in reference.OTHER_ENVIRONMENT}
    missing = sorted(n for n in read - documented if not n.startswith(ENV_PREFIX))
    assert missing == [], f"read by the code, missing from reference.OTHER_ENVIRONMENT: {missing}"


def test_check_fails_on_a_changed_file_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = tmp_path / "cli.md"
    current.write_text(reference.cli_reference())
    assert reference.main(["--check", str(current)]) == 0
    current.write_text(reference.cli_reference().replace("--selector", "--selektor", 1))
    assert reference.main(["--check", str(current)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "make docs" in err and str(current) in err
    assert reference.main(["--check", str(tmp_path / "absent.md")]) == 1


def test_the_reference_does_not_depend_on_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    before = reference.cli_reference()
    monkeypatch.setenv("CONNECT_RECONCILER_SELECTOR", "team=other")
    monkeypatch.setenv("COLUMNS", "40")
    assert reference.cli_reference() == before
