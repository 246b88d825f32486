"""Command-line conventions: --version, plain help with examples and the exit codes, the audit's
exit statuses and JSON schema, the plot extra's error message."""

from __future__ import annotations

import json
import re
import sys

import pytest

import gradtheory
from gradtheory import cli
from gradtheory.claims import Claim
from gradtheory.claims._cli import JSON_SCHEMA, exit_status
from gradtheory.claims._core import Findings, Quote, counterexample, property_held


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"gradtheory {gradtheory.__version__}"


@pytest.mark.parametrize("command", [None, *cli.SUBCOMMANDS])
def test_help_is_plain_text_and_lists_every_exit_code(capsys, command):
    """No reST markup (double backticks, :role:), every exit code with its meaning."""
    text = _help(capsys, *([command] if command else []))
    assert "``" not in text and not re.search(r":\w+:`", text), text
    for code, meaning in cli.EXIT_CODES.items():
        assert re.search(rf"^  {code}  {re.escape(meaning.split()[0])}", text, flags=re.MULTILINE), (code, text)


@pytest.mark.parametrize("command", list(cli.SUBCOMMANDS))
def test_each_subcommand_help_shows_its_examples(capsys, command):
    text = _help(capsys, command)
    assert "examples:" in text
    for example in cli.SUBCOMMANDS[command].examples:
        assert example in text
        assert example.startswith(f"gradtheory {command}")


def test_no_command_prints_help_and_is_a_usage_error(capsys):
    assert cli.main([]) == 2
    assert "exit status:" in capsys.readouterr().out


def test_audit_exit_status_distinguishes_failure_from_inconclusive():
    assert exit_status(["proved", "refuted", "refined", "verified"]) == 0
    assert exit_status(["proved", "unsettled"]) == 3
    assert exit_status(["unsettled", "error", "proved"]) == 1


def test_an_unsettled_claim_makes_the_audit_exit_3_and_its_json_follows_the_schema(monkeypatch, capsys):
    import gradtheory.claims as registry

    def check(settings):  # fails as written; its refinement is not established
        return Findings(counterexample(True, True), property_held(False), {"x": 1.5})

    unsettled = Claim("open-question", (Quote("000", "as written"),), "precisely", check, refinement="a refinement")
    monkeypatch.setattr(registry, "all_claims", lambda: [unsettled])
    assert cli.main(["audit", "--json"]) == 3
    entries = json.loads(capsys.readouterr().out)
    item = JSON_SCHEMA["items"]
    assert isinstance(entries, list) and len(entries) == 1
    for entry in entries:
        assert set(entry) == set(item["required"]) == set(item["properties"])
        assert entry["status"] in item["properties"]["status"]["enum"]
        assert all(isinstance(entry[k], str) for k in ("id", "source", "statement", "precise", "status", "basis"))
        assert entry["status"] == "unsettled" and entry["refinement"] == "a refinement"
        assert entry["evidence"] == {"x": 1.5}


def test_plot_without_matplotlib_names_the_extra(monkeypatch, tmp_path, capsys):
    """An absent matplotlib (simulated: its modules cannot be imported) is a usage error whose
    message says how to install the extra; nothing is written."""
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    out = tmp_path / "plots"
    assert cli.main(["plot", "--out", str(out), "--steps", "5", "--hidden", "2"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'gradtheory[plot]'" in err and "matplotlib" in err
    assert not out.exists()
