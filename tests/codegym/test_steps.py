"""codegym.steps.whole_statements: what runs of a code block cut by the token limit."""

from __future__ import annotations

from codegym.steps import MAX_CUTS, whole_statements


def test_code_that_parses_comes_back_as_it_is():
    code = "def f(x):\n    return x\n\nprint(f(1))"
    assert whole_statements(code) is code


def test_an_unfinished_tail_is_dropped_at_the_last_top_level_line_that_leaves_code_parsing():
    code = "import math\n\ndef f(x):\n    return math.sqrt(x)\n\nassert f(4) == 2\ntests = [(1, 1), (9,"
    assert whole_statements(code) == "import math\n\ndef f(x):\n    return math.sqrt(x)\n\nassert f(4) == 2"


def test_an_unfinished_function_is_dropped_whole_not_cut_inside():
    code = "def f(x):\n    return x\n\ndef g(y):\n    if y:\n        return ["
    assert whole_statements(code) == "def f(x):\n    return x"


def test_an_else_at_column_zero_is_not_a_place_to_cut():
    code = "if True:\n    x = 1\nelse:\n    x = [2,"
    # Cutting before "else:" leaves a whole if statement: that is the prefix that runs.
    assert whole_statements(code) == "if True:\n    x = 1"


def test_code_with_no_parsing_prefix_comes_back_as_it_is():
    for code in ("def f(x):\n    return [x,", "print((1,", "x = '\x00'\ny = (", ""):
        assert whole_statements(code) == code


def test_only_the_last_top_level_lines_are_tried():
    broken_head = "def f(:\n    pass\n"
    tail = "".join(f"x{i} = {i}\n" for i in range(MAX_CUTS + 10)) + "y = ["
    code = broken_head + tail
    # No prefix within the last MAX_CUTS top-level lines parses (the head is broken): nothing is cut.
    assert whole_statements(code) == code
