"""Meta-agent replies as small models really write them, and the helper API's answer and code extraction."""

from __future__ import annotations

import pytest

from w4s.metaagent.parsing import ActionParseError, check_workflow_code, parse_action
from w4s.workflow.helper_api import extract_answer_str, extract_code_block

WF = "def workflow(agent, task):\n    return {{'answer': {value!r}}}\n"


def wf(value: object) -> str:
    return WF.format(value=value)


def answer_of(code: str) -> object:
    """Run the parsed workflow, to check it is the intended one and not merely some block."""
    namespace: dict[str, object] = {}
    exec(compile(code, "<test>", "exec"), namespace)
    return namespace["workflow"](None, "task")["answer"]  # type: ignore[operator]


def test_plain_fenced_python_block() -> None:
    reply = f"I will ask directly.\n\n```python\n{wf('plain')}```\nThat is all.\n"
    action = parse_action(reply)
    assert action.code == wf("plain")
    assert action.reply == reply
    assert action.analysis == "I will ask directly."


@pytest.mark.parametrize("tag", ["Python", "PYTHON", "py", "python3", "python title='wf.py'"])
def test_language_tag_variants(tag: str) -> None:
    # An untagged block earlier in the reply must lose against the python-tagged one, whatever its spelling.
    reply = f"```\n{wf('untagged')}```\n\n```{tag}\n{wf('tagged')}```\n"
    assert answer_of(parse_action(reply).code) == "tagged"


def test_last_block_defining_workflow_wins_and_later_other_blocks_are_ignored() -> None:
    reply = (f"First try:\n```python\n{wf('first')}```\nBetter:\n```python\n{wf('second')}```\n"
             "Example use:\n```python\nprint(workflow(agent, 'x'))\n```\n")
    assert answer_of(parse_action(reply).code) == "second"


def test_python_block_preferred_over_later_untagged_block() -> None:
    reply = f"```python\n{wf('python')}```\n```text\n{wf('text')}```\n"
    assert answer_of(parse_action(reply).code) == "python"


def test_untagged_block_used_when_no_python_block_defines_workflow() -> None:
    reply = f"```python\nx = 1\n```\n```\n{wf('untagged')}```\n"
    assert answer_of(parse_action(reply).code) == "untagged"


def test_unterminated_fence_at_end_of_reply() -> None:
    reply = f"Analysis here.\n```python\n{wf('cut off')}"  # the model stopped before closing the fence
    action = parse_action(reply)
    assert answer_of(action.code) == "cut off"
    assert "```" not in action.code


def test_bare_def_without_fences() -> None:
    reply = f"My plan is simple.\n\n{wf('bare')}"
    action = parse_action(reply)
    assert answer_of(action.code) == "bare"
    assert action.analysis == "My plan is simple."


def test_prose_only_is_a_parse_error() -> None:
    with pytest.raises(ActionParseError, match=r"def workflow\(agent, task\)"):
        parse_action("I think we should use chain of thought and then vote on the answers.")


def test_syntax_error_names_the_line() -> None:
    code = "import re\n\ndef workflow(agent, task):\n    x = (\n    return {'answer': x}\n"
    with pytest.raises(ActionParseError) as info:
        parse_action(f"```python\n{code}```")
    message = str(info.value)
    assert "SyntaxError" in message
    assert "line 4" in message  # line 4 of the workflow code, where the parenthesis is opened
    assert "x = (" in message


def test_workflow_with_one_argument_is_rejected() -> None:
    with pytest.raises(ActionParseError, match="two arguments"):
        parse_action("```python\ndef workflow(task):\n    return {'answer': 1}\n```")


@pytest.mark.parametrize("code", [
    "class Flow:\n    def workflow(self, agent, task):\n        return {'answer': 1}\n",
    "def outer():\n    def workflow(agent, task):\n        return {'answer': 1}\n    return workflow\n",
])
def test_workflow_only_inside_a_class_or_nested_is_rejected(code: str) -> None:
    with pytest.raises(ActionParseError):
        parse_action(f"```python\n{code}```")
    with pytest.raises(ActionParseError, match="top-level"):
        check_workflow_code(code)


def test_workflow_at_column_zero_inside_a_string_is_not_top_level() -> None:
    code = 'def helper():\n    return """\ndef workflow(agent, task):\n    pass\n"""\n'
    with pytest.raises(ActionParseError, match="top-level"):
        parse_action(f"```python\n{code}```")


def test_analysis_is_extracted_without_headings() -> None:
    reply = (f"## Analysis\nThe last workflow ignored units.\nAsk for units.\n\n## Workflow:\n"
             f"```python\n{wf(1)}```\n")
    action = parse_action(reply)
    assert action.analysis == "The last workflow ignored units.\nAsk for units."
    assert "##" not in action.analysis


def test_crlf_line_endings() -> None:
    reply = f"## Analysis\nUse CRLF.\n\n```python\n{wf('crlf')}```\n".replace("\n", "\r\n")
    action = parse_action(reply)
    assert answer_of(action.code) == "crlf"
    assert "\r" not in action.code
    assert action.analysis == "Use CRLF."
    assert action.reply == reply  # the reply itself (what RLAO trains on) is kept byte for byte


def test_a_solver_function_alone_is_rejected() -> None:
    with pytest.raises(ActionParseError):
        parse_action("```python\ndef solver(agent, task):\n    return {'answer': 1}\n```")


# -- helper API: extract_answer_str --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    (r"So the result is \boxed{\frac{1}{2}}.", r"\frac{1}{2}"),
    (r"First \boxed{3}, then corrected: \boxed{ \sqrt{\frac{a}{b}} }", r"\sqrt{\frac{a}{b}}"),
    ("She has 12 apples and pays 1,234,567 dollars.", "1234567"),
    ("Between 3 and 5 the answer is -42", "-42"),
    ("It costs 3.75 in total.", "3.75"),
    ("The temperature fell to -0.5 degrees", "-0.5"),
    ("Paris is big. The capital is Paris!", "The capital is Paris!"),
    ("", ""),
])
def test_extract_answer_str(text: str, expected: str) -> None:
    assert extract_answer_str(text) == expected


def test_extract_answer_str_boxed_wins_over_later_numbers() -> None:
    assert extract_answer_str(r"\boxed{7} because 3 + 4 = 7 and not 8") == "7"


# -- helper API: extract_code_block --------------------------------------------------------------------------


def test_extract_code_block_selects_the_entry_point() -> None:
    text = ("```python\ndef helper(x):\n    return x\n```\n"
            "```python\ndef solution():\n    return 1\n```\n"
            "```python\ndef main():\n    return 2\n```\n")
    assert extract_code_block(text) == "def solution():\n    return 1"
    assert extract_code_block(text, entry_point="main") == "def main():\n    return 2"
    assert extract_code_block(text, entry_point="missing") == ""


def test_extract_code_block_prefers_python_tagged_blocks() -> None:
    text = ("```\ndef solution():\n    return 'untagged'\n```\n"
            "```Python\ndef solution():\n    return 'tagged'\n```\n")
    assert "tagged'" in extract_code_block(text) and "untagged" not in extract_code_block(text)
    assert extract_code_block("```\ndef solution():\n    return 0\n```") == "def solution():\n    return 0"


def test_extract_code_block_entry_point_is_not_a_prefix_match() -> None:
    text = "```python\ndef solution_helper():\n    return 1\n```"
    assert extract_code_block(text) == ""
