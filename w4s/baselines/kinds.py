"""What a baseline workflow needs to know about a benchmark's answer kind, as source text for the rendered code.

A rendered baseline is one plain workflow: the answer kind shows up only as a few constants (the executor's role,
the answer instructions, the debate roles and the experts) and as the body of ``final_answer`` (and, for
self-consistency, ``vote_key``). Everything here is source code that runs inside the worker, so it uses the
standard library and the helper API only.
"""

from __future__ import annotations

from dataclasses import dataclass

from w4s.benchmarks.base import AnswerKind


@dataclass(frozen=True)
class Kind:
    """The kind-specific parts of a rendered baseline."""

    role: str  # the executor's role in single-agent calls
    instructions: str  # ANSWER_INSTRUCTIONS: what the 'answer' field must hold
    debate_roles: tuple[str, str, str]  # LLM debate: three agents with different viewpoints
    experts: tuple[str, ...]  # dynamic role assignment: the router picks one of these
    final_answer: str  # source of final_answer(agent, task, raw) -> the answer the workflow returns
    vote_key: str  # source of vote_key(answer) -> what self-consistency counts as "the same answer"
    imports: tuple[str, ...] = ()  # modules that final_answer, constants and helpers use
    vote_imports: tuple[str, ...] = ()  # modules that vote_key uses
    constants: str = ""  # module-level source the two functions above use
    helpers: str = ""  # functions that final_answer uses and that a workflow body may call too


NUMBER = Kind(
    role="math problem solver",
    instructions=("Put only the final number in 'answer': digits, with a minus sign or a decimal point if needed, "
                  "and no units, words or thousands separators."),
    debate_roles=("Math Professor", "Grade School Teacher", "Math Enthusiast"),
    experts=("Math Professor", "Grade School Teacher", "Math Enthusiast"),
    final_answer='''def final_answer(agent, task: str, raw) -> str:
    """Only the number: the last number the executor wrote in 'answer', without thousands separators."""
    return agent.extract_answer_str(str(raw))''',
    vote_key='''def vote_key(answer: str) -> str:
    """Equal numbers vote together however they are written (12, 12.0, 12.00)."""
    try:
        return str(round(float(answer), 6))
    except ValueError:
        return answer.strip().lower()''',
)

MATH = Kind(
    role="mathematician",
    instructions=("Put only the final answer in 'answer', simplified, as a LaTeX expression without $ signs or "
                  "\\boxed{} (for example \\frac{3}{4} or 2\\sqrt{5})."),
    debate_roles=("Math Professor", "Math Olympiad Coach", "Math Enthusiast"),
    experts=("Algebra Expert", "Geometry Expert", "Number Theory Expert", "Combinatorics and Probability Expert",
             "Calculus and Analysis Expert"),
    final_answer=r'''def final_answer(agent, task: str, raw) -> str:
    """Only the final expression: unwrap \\boxed{...}, drop $ signs and a trailing period."""
    text = str(raw).strip()
    if "\\boxed" in text:
        text = agent.extract_answer_str(text)
    return text.strip().strip("$").strip().rstrip(".").strip()''',
    vote_key=r'''def vote_key(answer: str) -> str:
    """Expressions that differ only in spacing or sizing commands vote together."""
    key = re.sub(r"\\(?:left|right|!|,|;|:)|\s+", "", answer)
    return key.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")''',
    vote_imports=("re",),
)

CHOICE = Kind(
    role="expert at answering multiple-choice questions",
    instructions="Put only the letter of the correct option in 'answer' (for example B).",
    debate_roles=("Subject Matter Expert", "Critical Thinker", "Skeptical Reviewer"),
    experts=("Physics Expert", "Chemistry Expert", "Biology Expert", "Mathematics and Computer Science Expert",
             "Humanities and Social Science Expert", "Law, Business and Health Expert"),
    final_answer=r'''def final_answer(agent, task: str, raw) -> str:
    """Only the option letter: a bare letter, the letter after an answer marker, or the one option letter named.

    Never the first capital found in free text ("A good answer is C" is C, not A).
    """
    options = set(re.findall(r"^\s*\(?([A-Z])[.)]\s", task, re.MULTILINE)) or set("ABCDEFGHIJ")
    text = str(raw).strip()
    bare = text.strip(" ().:*")
    if len(bare) == 1 and bare.upper() in options:
        return bare.upper()
    marked = re.findall(r"(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-Z])\b", text, re.IGNORECASE)
    named = [m.upper() for m in marked if m.upper() in options]
    if named:
        return named[-1]
    letters = {x for x in re.findall(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])", text) if x in options}
    return letters.pop() if len(letters) == 1 else text''',
    vote_key='''def vote_key(answer: str) -> str:
    """The option letter, whatever its case."""
    return answer.strip().upper()''',
    imports=("re",),
)

TEXT = Kind(
    role="reading comprehension expert",
    instructions=("Put only the answer in 'answer': a short span copied from the passage, a number, or a date, "
                  "with no explanation. If the question asks for several items, join them with ' and '."),
    debate_roles=("Reading Comprehension Expert", "Logical Reasoning Expert", "Arithmetic Specialist"),
    experts=("Reading Comprehension Specialist", "Logical Reasoning Strategist", "Arithmetic Specialist",
             "Historian", "Sports Analyst"),
    final_answer='''def final_answer(agent, task: str, raw) -> str:
    """The answer as text; several spans given as a JSON list are joined with ' and ', as DROP's golds are."""
    if isinstance(raw, list):
        return " and ".join(str(part).strip() for part in raw)
    return str(raw).strip()''',
    vote_key=r'''def vote_key(answer: str) -> str:
    """Answers that differ only in case, punctuation, articles or spacing vote together."""
    words = re.sub(r"[^\w\s]", " ", answer.lower()).split()
    return " ".join(word for word in words if word not in ("a", "an", "the"))''',
    vote_imports=("re",),
)

CODE = Kind(
    role="expert Python programmer",
    instructions=("Put in 'answer' the complete Python code of the function the task asks for, with the same name "
                  "and signature and the imports it needs, in one ```python fenced block."),
    debate_roles=("Senior Python Developer", "Algorithms Expert", "Software Tester"),
    experts=("Algorithms Expert", "Senior Python Developer", "String Processing Specialist",
             "Mathematical Programmer"),
    constants='ENTRY_POINT = re.compile(r"Write the function `([A-Za-z_]\\w*)` in Python\\.")',
    helpers=r'''def entry_point(task: str) -> str:
    """The function to write, named by the task's last line; else the first function the task defines."""
    named = ENTRY_POINT.findall(task)
    if named:
        return named[-1]
    defined = re.findall(r"^\s*def\s+([A-Za-z_]\w*)\s*\(", task, re.MULTILINE)
    return defined[0] if defined else "solution"''',
    final_answer='''def final_answer(agent, task: str, raw) -> str:
    """The code: the fenced block in 'answer' that defines the entry point, else the whole text."""
    text = str(raw)
    return agent.extract_code_block(text, entry_point(task)) or text.strip()''',
    vote_key='''def vote_key(answer: str) -> str:
    """Programs that differ only in whitespace vote together."""
    return "".join(answer.split())''',
    imports=("re",),
)

KINDS: dict[AnswerKind, Kind] = {"number": NUMBER, "math": MATH, "choice": CHOICE, "text": TEXT, "code": CODE}
