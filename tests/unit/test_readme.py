"""The README as a new user meets it (issue 25, item 2): the first screen says what lbapp is and
gives the two commands and where the command lives; tables stay readable; measured ratios live
in bench/README.md alone, the README points there."""
import re
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_first_screen_says_what_it_is_and_how_to_start():
    first = "\n".join(README.splitlines()[:50])
    for must in ("direct-routing", "bash scripts/demo.sh", "bash scripts/test.sh", ".venv/bin/lbapp",
                 "Without root", "bench/README.md", ".png"):
        assert must in first, must


def test_no_table_cell_runs_past_three_hundred_characters():
    long = [(number, len(cell)) for number, line in enumerate(README.splitlines(), 1) if line.startswith("|")
            for cell in re.split(r"(?<!\\)\|", line) if len(cell) > 300]
    assert long == []


def test_ratios_are_stated_in_bench_readme_not_repeated_here():
    assert re.findall(r"\b\d\.\d+x\b", README) == []
