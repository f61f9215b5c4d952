"""docs/TESTING.md lists exactly the suite's tests: none leaves (or arrives) without the table saying so."""

from __future__ import annotations

import re
from pathlib import Path

from tests.testing_doc import behaviour, junit_seconds, suite_tests

DOC = Path(__file__).resolve().parents[2] / "docs" / "TESTING.md"


def test_every_test_is_in_the_table_and_the_table_names_no_missing_test():
    listed = set(re.findall(r"`(tests/[\w/]+\.py::\w+)`", DOC.read_text(encoding="utf-8")))
    present = {test for tests in suite_tests().values() for test, _ in tests}
    assert present - listed == set(), (
        "tests missing from docs/TESTING.md: run `make test` then `make testing-doc`"
    )
    assert listed - present == set(), "docs/TESTING.md names tests that no longer exist: `make testing-doc`"


def test_behaviour_is_the_docstring_or_the_name_as_a_sentence():
    import ast

    named, documented = ast.parse(
        "def test_a_bad_body_is_a_400():\n    pass\n"
        'def test_x():\n    """The server answers. More detail."""\n'
    ).body
    assert behaviour(named) == "A bad body is a 400"
    assert behaviour(documented) == "The server answers"


def test_junit_times_are_summed_over_parametrized_cases(tmp_path):
    report = tmp_path / "junit.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.unit.test_a" name="test_b[1]" time="1.5"/>'
        '<testcase classname="tests.unit.test_a" name="test_b[2]" time="2.0"/>'
        '<testcase classname="tests.e2e.test_c" name="test_d" time="7"/>'
        "</testsuite></testsuites>"
    )
    assert junit_seconds(report) == {"tests/unit/test_a.py::test_b": 3.5, "tests/e2e/test_c.py::test_d": 7.0}
