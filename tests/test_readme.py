"""The README's "Ten lines of Python" example runs as written and says what it claims."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_ten_line_example_runs_and_matches_its_description() -> None:
    text = README.read_text()
    section = text[text.index("## Ten lines of Python") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.group(1), "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    errors = {line.split("(")[0]: float(line.rsplit(" ", 1)[1]) for line in lines[:4]}
    assert errors["Average"] > 1e5
    assert errors["Median"] < 5 and errors["GeometricMedian"] < 5
    assert errors["Pipeline"] < 1e-3
    assert lines[4].startswith("0.40")
