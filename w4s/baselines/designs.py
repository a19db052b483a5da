"""The seven hand-designed baselines (after ADAS's baseline agents), as workflow source text per answer kind.

Each design contributes its constants, helper functions and ``workflow`` body; :func:`assemble` puts them after
the answer kind's constants and ``final_answer``, so the rendered code reads as one ordinary workflow. Where the
code kind needs a different body (public tests for CoT and Self-Refine), the design has a second body rather than
conditionals, so that neither rendering carries the other's lines.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field

from w4s.baselines.kinds import Kind

REASONING = "Think step by step in 'reasoning'. "


@dataclass(frozen=True)
class Part:
    """Source pieces a design adds to the rendered workflow."""

    constants: list[tuple[str, object]] = field(default_factory=list)  # NAME = value, rendered as a literal
    helpers: list[str] = field(default_factory=list)  # function sources, before the workflow
    body: str = ""  # the workflow function
    imports: tuple[str, ...] = ()
    vote_key: bool = False  # the design counts votes: render the kind's vote_key


@dataclass(frozen=True)
class Design:
    name: str
    title: str
    description: str  # one line, for `w4s eval --workflow NAME` and the docstring of the rendered code
    calls: tuple[int, int]  # least and most LLM calls per task (malformed-JSON re-asks not counted)
    code_calls: tuple[int, int] | None  # the same for the code answer kind, when it differs
    calls_note: str  # where the count comes from
    part: Callable[[Kind, bool], Part]  # (kind, is_code) -> source pieces
    code_calls_note: str | None = None  # where the count comes from for code, when it differs
    code_description: str | None = None  # the description for code, when it differs

    def call_bounds(self, is_code: bool) -> tuple[int, int]:
        return self.code_calls if is_code and self.code_calls else self.calls

    def summary(self, is_code: bool) -> tuple[str, str]:
        """(description, calls note) as the rendered code for this kind states them."""
        if is_code:
            return self.code_description or self.description, self.code_calls_note or self.calls_note
        return self.description, self.calls_note


# -- shared source -----------------------------------------------------------------------------------------------

ASK = '''def ask(agent, prompt: str, instructions: str, temperature: float, role: str = ROLE,
        keys: tuple = ("reasoning", "answer")) -> dict:
    """One JSON reply from the executor with the given keys."""
    return agent.call_json_format_llm(
        messages=[{"role": "user", "content": prompt}],
        temperature=temperature,
        num_of_response=1,
        agent_role=role,
        return_dict_keys=list(keys),
        instructions=instructions,
    )[0]'''

SHOW = '''def show(reply: dict) -> str:
    """A reply as another agent reads it."""
    return f"Reasoning: {reply['reasoning']}\\nAnswer: {reply['answer']}"'''

IS_TRUE = '''def is_true(value) -> bool:
    """JSON true, or a string that says so."""
    return value is True or str(value).strip().lower() in ("true", "yes")'''


def _single_call(keys: str, instructions: str, temperature: float) -> str:
    return f'''reply = agent.call_json_format_llm(
        messages=[{{"role": "user", "content": task}}],
        temperature={temperature!r},
        num_of_response=1,
        agent_role=ROLE,
        return_dict_keys={keys},
        instructions={instructions},
    )[0]'''


# -- vanilla -----------------------------------------------------------------------------------------------------

def _vanilla(kind: Kind, is_code: bool) -> Part:
    return Part(body=f'''def workflow(agent, task: str) -> dict:
    {_single_call('["answer"]', "ANSWER_INSTRUCTIONS", 0.0)}
    return {{"answer": final_answer(agent, task, reply["answer"])}}''')


# -- chain-of-thought --------------------------------------------------------------------------------------------

def _cot(kind: Kind, is_code: bool) -> Part:
    call = _single_call('["reasoning", "answer"]', "REASONING + ANSWER_INSTRUCTIONS", 0.0)
    if not is_code:
        return Part(constants=[("REASONING", REASONING)], body=f'''def workflow(agent, task: str) -> dict:
    {call}
    return {{"answer": final_answer(agent, task, reply["answer"])}}''')
    return Part(constants=[("REASONING", REASONING), ("PUBLIC_TEST_REPAIRS", 2)],
                body=f'''def workflow(agent, task: str) -> dict:
    {call}
    code = final_answer(agent, task, reply["answer"])
    # Run the task's public tests; on a failure the executor reflects and repairs the code (one call per repair).
    checked = agent.test_on_public_test(task, code, entry_point(task), test_loop=PUBLIC_TEST_REPAIRS)
    return {{"answer": checked["solution"]}}''')


# -- self-consistency --------------------------------------------------------------------------------------------

MAJORITY_VOTE = '''def majority_vote(answers: list) -> str:
    """The most frequent answer after normalisation; a tie goes to the answer seen first."""
    counts = Counter(vote_key(answer) for answer in answers)
    winner = counts.most_common(1)[0][0]
    return next(answer for answer in answers if vote_key(answer) == winner)'''

ENSEMBLE = '''def ensemble(agent, task: str, replies: list, answers: list) -> str:
    """One more call: the executor compares the samples and names the best one."""
    listing = "\\n\\n".join(f"## Solution {i}\\nReasoning: {reply['reasoning']}\\nAnswer: {answer}"
                          for i, (reply, answer) in enumerate(zip(replies, answers, strict=True), 1))
    pick = agent.call_json_format_llm(
        messages=[{"role": "user", "content": f"{task}\\n\\n# Candidate solutions\\n{listing}"}],
        temperature=0.0,
        num_of_response=1,
        agent_role=ROLE,
        return_dict_keys=["reasoning", "best"],
        instructions=("Compare the candidate solutions and look for mistakes in each. Put the number of the best "
                      f"solution (1 to {len(answers)}) in 'best'."),
    )[0]
    found = re.search(r"\\d+", str(pick["best"]))
    best = int(found.group()) if found else 1
    return answers[best - 1] if 1 <= best <= len(answers) else answers[0]'''


def _cot_sc(kind: Kind, is_code: bool) -> Part:
    # Voting needs answers that can be equal; programs rarely are, so code lets the executor pick (W4S, App. D.2).
    aggregation = "ensemble" if is_code else "vote"
    return Part(
        constants=[("REASONING", REASONING), ("N_SAMPLES", 5), ("AGGREGATION", aggregation)],
        helpers=[MAJORITY_VOTE, ENSEMBLE],
        imports=("re", "collections.Counter"),
        vote_key=True,
        body='''def workflow(agent, task: str) -> dict:
    replies = agent.call_json_format_llm(
        messages=[{"role": "user", "content": task}],
        temperature=0.8,
        num_of_response=N_SAMPLES,
        agent_role=ROLE,
        return_dict_keys=["reasoning", "answer"],
        instructions=REASONING + ANSWER_INSTRUCTIONS,
    )
    answers = [final_answer(agent, task, reply["answer"]) for reply in replies]
    if AGGREGATION == "ensemble":  # "vote": majority over normalised answers; "ensemble": the executor picks
        return {"answer": ensemble(agent, task, replies, answers)}
    return {"answer": majority_vote(answers)}''')


# -- self-refine -------------------------------------------------------------------------------------------------

REFINE = ("Given your previous attempts and the feedback on them, consider carefully where your latest attempt "
          "could be wrong, then solve the task better. ")
CRITIC = ("Review the latest answer and explain in 'feedback' where it might be wrong. Put true in 'correct' only "
          "if you are absolutely sure that the answer is correct, else false.")

SELF_REFINE_BODY = '''def workflow(agent, task: str) -> dict:
    reply = ask(agent, task, REASONING + ANSWER_INSTRUCTIONS, 0.0)
    history = ""
    for round_number in range(1, MAX_ROUNDS + 1):
        review = ask(agent, f"{task}\\n\\n# Latest answer\\n{show(reply)}", CRITIC, 0.0, role="strict reviewer",
                     keys=("feedback", "correct"))
        if is_true(review["correct"]):
            break
        history += f"\\n\\n# Attempt {round_number}\\n{show(reply)}\\n\\n# Feedback\\n{review['feedback']}"
        reply = ask(agent, task + history, REFINE + REASONING + ANSWER_INSTRUCTIONS, 0.5)
    return {"answer": final_answer(agent, task, reply["answer"])}'''

SELF_REFINE_CODE_BODY = '''def workflow(agent, task: str) -> dict:
    reply = ask(agent, task, REASONING + ANSWER_INSTRUCTIONS, 0.0)
    history = ""
    for round_number in range(1, MAX_ROUNDS + 1):
        code = final_answer(agent, task, reply["answer"])
        # test_loop=0 only runs the public tests (no LLM call); the critic sees their outcome.
        tests = agent.test_on_public_test(task, code, entry_point(task), test_loop=0)
        outcome = "passed" if tests["result"] else f"failed:\\n{tests['feedback']}"
        attempt = f"{show(reply)}\\nPublic tests: {outcome}"
        review = ask(agent, f"{task}\\n\\n# Latest answer\\n{attempt}", CRITIC, 0.0, role="strict reviewer",
                     keys=("feedback", "correct"))
        if tests["result"] and is_true(review["correct"]):
            break
        history += f"\\n\\n# Attempt {round_number}\\n{attempt}\\n\\n# Feedback\\n{review['feedback']}"
        reply = ask(agent, task + history, REFINE + REASONING + ANSWER_INSTRUCTIONS, 0.5)
    return {"answer": final_answer(agent, task, reply["answer"])}'''


def _self_refine(kind: Kind, is_code: bool) -> Part:
    return Part(
        constants=[("REASONING", REASONING), ("MAX_ROUNDS", 5), ("REFINE", REFINE), ("CRITIC", CRITIC)],
        helpers=[ASK, SHOW, IS_TRUE],
        body=SELF_REFINE_CODE_BODY if is_code else SELF_REFINE_BODY)


# -- LLM debate --------------------------------------------------------------------------------------------------

DEBATE = ("Given the solutions of the other agents, consider their opinions as additional advice, think carefully "
          "and give an updated answer. ")
FINAL = "Given all the solutions above, reason over them carefully and give the final answer. "


def _debate(kind: Kind, is_code: bool) -> Part:
    return Part(
        constants=[("REASONING", REASONING), ("DEBATE_ROLES", list(kind.debate_roles)), ("ROUNDS", 2),
                   ("DEBATE", DEBATE), ("FINAL", FINAL)],
        helpers=[ASK, SHOW],
        body='''def workflow(agent, task: str) -> dict:
    replies = [ask(agent, task, REASONING + ANSWER_INSTRUCTIONS, 0.8, role=role) for role in DEBATE_ROLES]
    for _ in range(ROUNDS - 1):
        previous, replies = replies, []
        for i, role in enumerate(DEBATE_ROLES):
            others = "\\n\\n".join(f"## {DEBATE_ROLES[j]}\\n{show(reply)}"
                                 for j, reply in enumerate(previous) if j != i)
            prompt = (f"{task}\\n\\n# Your previous solution\\n{show(previous[i])}\\n\\n"
                      f"# Other agents' solutions\\n{others}")
            replies.append(ask(agent, prompt, DEBATE + REASONING + ANSWER_INSTRUCTIONS, 0.8, role=role))
    debate = "\\n\\n".join(f"## {role}\\n{show(reply)}" for role, reply in zip(DEBATE_ROLES, replies, strict=True))
    final = ask(agent, f"{task}\\n\\n# Solutions after the debate\\n{debate}", FINAL + REASONING + ANSWER_INSTRUCTIONS,
                0.1)
    return {"answer": final_answer(agent, task, final["answer"])}''')


# -- quality-diversity -------------------------------------------------------------------------------------------

DIVERSE = ("Given the previous attempts, come up with another interesting way to solve the task, different from "
           "all of them. ")


def _quality_diversity(kind: Kind, is_code: bool) -> Part:
    return Part(
        constants=[("REASONING", REASONING), ("N_ALTERNATIVES", 3), ("DIVERSE", DIVERSE), ("FINAL", FINAL)],
        helpers=[ASK, SHOW],
        body='''def workflow(agent, task: str) -> dict:
    attempts = [ask(agent, task, REASONING + ANSWER_INSTRUCTIONS, 0.5)]
    for _ in range(N_ALTERNATIVES):
        listing = "\\n\\n".join(f"## Attempt {i}\\n{show(reply)}" for i, reply in enumerate(attempts, 1))
        prompt = f"{task}\\n\\n# Previous attempts\\n{listing}"
        attempts.append(ask(agent, prompt, DIVERSE + REASONING + ANSWER_INSTRUCTIONS, 0.8))
    listing = "\\n\\n".join(f"## Solution {i}\\n{show(reply)}" for i, reply in enumerate(attempts, 1))
    final = ask(agent, f"{task}\\n\\n# Candidate solutions\\n{listing}", FINAL + REASONING + ANSWER_INSTRUCTIONS, 0.1)
    return {"answer": final_answer(agent, task, final["answer"])}''')


# -- dynamic role assignment -------------------------------------------------------------------------------------

ROUTE = '''def choose_expert(agent, task: str) -> str:
    """The router: which expert should answer this task (the fallback when its choice names none)."""
    reply = ask(agent, task, f"Choose the expert best suited to answer this task, from: {', '.join(EXPERTS)}. Put "
                "only the expert's name in 'choice'.", 0.0, role="router", keys=("choice",))
    choice = str(reply["choice"]).lower()
    return next((expert for expert in EXPERTS if expert.lower() in choice), FALLBACK_EXPERT)'''


def _dynamic_role(kind: Kind, is_code: bool) -> Part:
    return Part(
        constants=[("REASONING", REASONING), ("EXPERTS", list(kind.experts)),
                   ("FALLBACK_EXPERT", "Helpful Assistant")],
        helpers=[ASK, ROUTE],
        body='''def workflow(agent, task: str) -> dict:
    expert = choose_expert(agent, task)
    reply = ask(agent, task, REASONING + ANSWER_INSTRUCTIONS, 0.0, role=expert)
    return {"answer": final_answer(agent, task, reply["answer"])}''')


DESIGNS: tuple[Design, ...] = (
    Design("vanilla", "Vanilla", "one call that gives the answer only, no reasoning", (1, 1), None, "one call",
           _vanilla),
    Design("cot", "Chain-of-Thought", "reason step by step, then answer (the example workflow W0)", (1, 1), (1, 3),
           "one call", _cot, code_calls_note="one call, plus one repair call per failed public-test round, at most 2"),
    Design("cot-sc", "Self-Consistency with Chain-of-Thought",
           "5 chain-of-thought samples in one request, then a majority vote over the normalised answers", (1, 1),
           (2, 2), "one request for 5 samples", _cot_sc,
           code_calls_note="one request for 5 samples, plus one call that picks the best",
           code_description="5 chain-of-thought samples in one request, then the executor picks the best one"),
    Design("self-refine", "Self-Refine", "answer, then up to 5 rounds of critique and refinement, stopping when the "
           "critic is sure the answer is correct", (2, 11), None,
           "1 answer, then per round a critique and, unless the critic accepts, a refinement", _self_refine,
           code_description="answer, then up to 5 rounds of public tests, critique and refinement, stopping when "
           "the tests pass and the critic is sure the answer is correct"),
    Design("llm-debate", "LLM Debate", "3 agents with different roles answer, debate for a second round seeing each "
           "other's answers, then a final decision", (7, 7), None, "3 roles x 2 rounds + 1 final decision", _debate),
    Design("quality-diversity", "Quality-Diversity", "an answer, then 3 attempts that differ from all the previous "
           "ones, then a final decision over the 4", (5, 5), None, "1 + 3 diverse attempts + 1 final decision",
           _quality_diversity),
    Design("dynamic-role", "Dynamic Assignment of Roles", "a router picks an expert role suited to the task, then "
           "that expert answers step by step", (2, 2), None, "1 routing call + 1 expert call", _dynamic_role),
)


def _constant(name: str, value: object) -> str:
    """``NAME = value``; long strings split into adjacent literals so the rendered code stays readable."""
    if isinstance(value, list) and len(_literal(value)) > 96:
        return f"{name} = [\n" + "".join(f"    {_literal(item)},\n" for item in value) + "]"
    if not isinstance(value, str) or len(value) <= 96:
        return f"{name} = {_literal(value)}"
    pieces, line = [], ""
    for word in value.split(" "):
        if line and len(line) + len(word) > 90:
            pieces.append(line)
            line = ""
        line += word + " "
    pieces.append(line[:-1])
    pad = " " * (len(name) + 4)
    return f"{name} = (" + f"\n{pad}".join(_literal(piece) for piece in pieces) + ")"


def _literal(value: object) -> str:
    """A Python literal; strings and lists of strings in double quotes (JSON's string syntax is valid Python)."""
    if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _imports(modules: set[str]) -> str:
    plain = sorted(m for m in modules if "." not in m)
    lines = [f"import {m}" for m in plain]
    lines += [f"from {m.rpartition('.')[0]} import {m.rpartition('.')[2]}" for m in sorted(modules - set(plain))]
    return "\n".join(lines)


def _calls_text(design: Design, is_code: bool) -> str:
    low, high = design.call_bounds(is_code)
    return f"{low}" if low == high else f"{low} to {high}"


def assemble(design: Design, kind_name: str, kind: Kind) -> str:
    """The complete source of ``design`` for one answer kind."""
    is_code = kind_name == "code"
    part = design.part(kind, is_code)
    description, note = design.summary(is_code)
    summary = textwrap.fill(f"{design.title}: {description}.", 116)
    calls = textwrap.fill(f"Answer kind: {kind_name}. LLM calls per task: {_calls_text(design, is_code)} ({note}).",
                          116)
    docstring = f'"""{summary}\n\n{calls}\n"""'
    constants = [_constant("ROLE", kind.role), _constant("ANSWER_INSTRUCTIONS", kind.instructions)]
    if kind.constants:
        constants.append(kind.constants)
    constants += [_constant(name, value) for name, value in part.constants]
    functions = [kind.helpers] if kind.helpers else []
    functions.append(kind.final_answer)
    if part.vote_key:
        functions.append(kind.vote_key)
    functions += [*part.helpers, part.body]
    sections = [docstring]
    modules = set(kind.imports) | set(part.imports) | (set(kind.vote_imports) if part.vote_key else set())
    if modules:
        sections.append(_imports(modules))
    sections.append("\n".join(constants))
    return "\n\n".join(sections) + "\n\n\n" + "\n\n\n".join(functions) + "\n"
