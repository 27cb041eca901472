"""Prompt protocols: how a model is asked for the next step, separate from the backend and the env's format.

The env, the agents and the PRM speak one neutral text format (:mod:`codegym.steps`); every policy prompt
is ``policy_prompt(render_state(problem, steps), len(steps))``. A protocol turns that into what a given
model should see, and says where the model's step ends:

- ``native``: the neutral text unchanged, stopping at the next ``### Step`` header: the built-in tiny
  model's own format (it was trained on it).
- ``think``: O1-Coder's "think before acting" for instruct models. A system message states the step
  protocol (``Outline:`` in pseudocode, ``Refine:`` steps, then one ```` ```python ```` block); the user
  turn holds the problem; the steps so far are **continued in the assistant turn**, each under a
  ``Step k:`` line that the model is told to use and that generation stops at. A small model drifts, so
  the protocol also steers structurally: step 1 opens with ``Outline:`` and step ``code_step`` opens
  with ```` ```python ````, which bounds an episode at ``code_step`` steps.
- ``direct``: the baseline every paper reports: the problem and an instruction to answer with one code
  block; step 1 opens with ```` ```python ````.

A forced opening (``prefix``) is part of the step: backends put it at the end of the prompt and return
``prefix + generated text`` as the step, so the env, the PRM and SFT see what the model was shown. Its
tokens are the protocol's, not the model's: they count neither in ``Sample.logprob`` nor in
``Sample.num_tokens``. A code step cut at its closing fence gets the fence back.

Example:
    >>> protocol = get_protocol("think")
    >>> built = protocol.build("### Problem\\nAdd a and b.\\n\\n### Step 1\\n")
    >>> built.messages[-1]
    {'role': 'assistant', 'content': 'Step 1:\\nOutline:'}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from codegym.errors import UserError
from codegym.steps import STEP_STOP, extract_code, parse_state

Message = dict[str, str]

# Where a chat model's step ends: the next step line, however the model decorates it.
_STEP_LINE_STOPS = (
    "\nStep ",
    "\n**Step ",
    "\n### Step",
    "\n## Step",
    "\n#### Step",
    "\nRefine:",
    "\n**Refine",
)
# A closing fence followed by a newline: the code is complete, and what follows is chatter.
_CLOSING_FENCE_STOP = "\n```\n"
_CODE_OPENING = "```python\n"
_OWN_STEP_LABEL = re.compile(
    r"\A\s*[#*_]*\s*Step(?:\s*\d+\s*[:.)]?|\s*:|[ \t]*(?=\n|\Z))[*_]*[ \t]*\n?", re.IGNORECASE
)
# The end of a neutral policy prompt: the header of the step to write (``next_step_header``).
_NEXT_HEADER = re.compile(r"\n\n### Step (\d+)\n\Z")

THINK_INSTRUCTION = """\
You are an expert Python programmer. Think before you code, in numbered steps.
Step 1 starts with "Outline:" and sketches the algorithm as short pseudocode.
A following step may start with "Refine:" and makes the pseudocode more precise.
The last step is the code: one ```python block holding the complete function, with its signature and \
imports, and nothing after the block.
Each step is one paragraph; start every step on a new line with "Step N:"."""

# What a user message asks for, by the step's opening, when the server cannot continue the assistant turn.
_ASKS = {
    "Outline:": 'Step {index}: outline the algorithm in short pseudocode, starting with "Outline:".',
    "Refine:": 'Step {index}: make the pseudocode more precise, starting with "Refine:".',
    _CODE_OPENING: "Step {index}: write the complete function in one ```python block.",
    "": "Step {index}: continue.",
}

DIRECT_INSTRUCTION = """\
You are an expert Python programmer. Answer with one ```python block holding the complete function, \
with its signature and imports, and nothing else."""


@dataclass(frozen=True)
class ProtocolPrompt:
    """One prompt in a protocol's form.

    Attributes:
        messages: chat messages; when the last one is the assistant's, it is continued, not restarted.
            Empty for a raw-text protocol.
        text: the raw prompt of a raw-text protocol (``native``); None for chat protocols.
        prefix: the step's forced opening, already at the end of the prompt; prepended to the sample.
        stop: where the model's step ends.
        max_new_tokens: this step's own token cap (a reasoning step's), or None for the caller's.
    """

    messages: tuple[Message, ...] = ()
    text: str | None = None
    prefix: str = ""
    stop: tuple[str, ...] = ()
    max_new_tokens: int | None = None

    @property
    def is_chat(self) -> bool:
        """Whether the prompt is chat messages (else raw text)."""
        return self.text is None

    def render(self, apply_chat_template: Callable[..., str] | None) -> str:
        """The prompt as one string: raw text as is, chat messages through ``apply_chat_template``.

        A final assistant message is continued exactly: the other messages are rendered with the
        generation prompt, and the assistant's text follows it verbatim (templates that strip trailing
        whitespace of a message would otherwise eat the newline after ``Step k:``).

        Raises:
            UserError: a chat prompt without a chat template.
        """
        if self.text is not None:
            return self.text
        if apply_chat_template is None:
            raise UserError(
                "this protocol needs a chat template, and the tokenizer has none; use protocol='native' "
                "for a base (non-instruct) model"
            )
        head, partial = list(self.messages), ""
        if head and head[-1]["role"] == "assistant":
            partial = head.pop()["content"]
        return apply_chat_template(head, tokenize=False, add_generation_prompt=True) + partial


@dataclass(frozen=True)
class PromptProtocol:
    """How a model is prompted for the next step (see the module docstring for the three built in).

    Attributes:
        name: ``"native"``, ``"think"``, ``"direct"`` or a user's own.
        instruction: the system message of a chat protocol; None for ``native``.
        outline_prefix: step 1's forced opening (``"Outline:"`` for ``think``); empty for none.
        refine_prefix: the forced opening of the steps between the outline and the code (``"Refine:"``).
        code_step: the step (1-based) forced to open with ```` ```python ````; None never forces code.
        system_role: send the instruction as a system message (True) or prepend it to the user turn, for
            templates without a system role.
        extra_stop: the step lines a chat model's step ends at (``Step N:`` with markdown variants).
        paragraph_steps: a reasoning (non-code) step also ends at a blank line; a small model that loops
            repeats whole paragraphs, and this caps the damage at one.
        reasoning_max_tokens: a reasoning step's token cap (below the caller's ``max_new_tokens``); a
            small model that loops inside a paragraph would otherwise spend the whole budget.
    """

    name: str
    instruction: str | None = None
    outline_prefix: str = ""
    refine_prefix: str = ""
    code_step: int | None = None
    system_role: bool = True
    extra_stop: tuple[str, ...] = field(default=_STEP_LINE_STOPS)
    paragraph_steps: bool = True
    reasoning_max_tokens: int | None = 96

    def __post_init__(self) -> None:
        if self.code_step is not None and not (isinstance(self.code_step, int) and self.code_step >= 1):
            raise UserError(f"code_step must be None or an int >= 1, got {self.code_step!r}")

    @property
    def is_chat(self) -> bool:
        """Whether this protocol prompts with chat messages (it needs a chat template or chat endpoint)."""
        return self.instruction is not None

    def build(self, prompt: str, stop: Sequence[str] = (STEP_STOP,)) -> ProtocolPrompt:
        """The model-side prompt for a neutral policy prompt (``policy_prompt(observation, k)``).

        ``stop`` is the caller's stop list; the neutral step stop is swapped for this protocol's step
        ends, other stops are kept. Text that is not an env prompt (a TCG prompt, say) is passed through
        unchanged as raw text with the caller's stops.
        """
        stop = tuple(s for s in stop if s)
        if self.instruction is None:
            return ProtocolPrompt(text=prompt, stop=stop)
        header = _NEXT_HEADER.search(prompt)
        if header is None:
            return ProtocolPrompt(text=prompt, stop=stop)
        try:
            problem, steps = parse_state(prompt[: header.start()])
        except ValueError:
            return ProtocolPrompt(text=prompt, stop=stop)
        if len(steps) + 1 != int(header.group(1)):
            return ProtocolPrompt(text=prompt, stop=stop)
        return self.build_steps(problem, steps, stop=stop)

    def build_steps(
        self,
        problem: str,
        steps: Sequence[str],
        *,
        stop: Sequence[str] = (STEP_STOP,),
        continued: bool = True,
    ) -> ProtocolPrompt:
        """The prompt for the step after ``steps`` of ``problem`` (chat protocols).

        ``continued=False`` is for chat servers that cannot continue an assistant message (they always
        open a new assistant turn): the steps so far are a finished assistant message, a user message
        asks for the next step (naming its opening), and nothing is forced.
        """
        if self.instruction is None:
            from codegym.steps import policy_prompt, render_state

            return ProtocolPrompt(
                text=policy_prompt(render_state(problem, steps), len(steps)), stop=tuple(stop)
            )
        index = len(steps) + 1
        prefix = self.step_prefix(index)
        done = "".join(f"Step {k}:\n{step.strip()}\n\n" for k, step in enumerate(steps, start=1))
        # A protocol whose first step is the code (direct) answers at once, as the model would be asked
        # outside the env: a "Step 1:" line reads as the start of a step-by-step answer, and
        # Qwen2.5-Coder then wrote one import, closed the block and stopped (0 of 5 HumanEval tasks).
        header = "" if index == 1 and self.code_step == 1 else f"Step {index}:\n"
        assistant = f"{done}{header}{prefix}"
        user = f"Problem:\n{problem.strip()}"
        if self.system_role:
            head: tuple[Message, ...] = (
                {"role": "system", "content": self.instruction},
                {"role": "user", "content": user},
            )
        else:
            head = ({"role": "user", "content": f"{self.instruction}\n\n{user}"},)
        if continued:
            messages = (*head, {"role": "assistant", "content": assistant})
        else:
            ask = {"role": "user", "content": _ASKS.get(prefix, _ASKS[""]).format(index=index)}
            messages = (*head, {"role": "assistant", "content": done.strip()}, ask) if done else (*head, ask)
            prefix = ""
        own_stop = tuple(s for s in stop if s != STEP_STOP) + self.extra_stop + (_CLOSING_FENCE_STOP,)
        cap = None
        if prefix != _CODE_OPENING:
            cap = self.reasoning_max_tokens
            if self.paragraph_steps:  # a small model that loops repeats paragraphs: a step is one
                own_stop += ("\n\n",)
        return ProtocolPrompt(
            messages=messages, prefix=prefix, stop=tuple(dict.fromkeys(own_stop)), max_new_tokens=cap
        )

    def step_prefix(self, index: int) -> str:
        """The forced opening of step ``index`` (1-based): code at ``code_step``, the outline at step 1."""
        if self.code_step is not None and index >= self.code_step:
            return _CODE_OPENING
        if index == 1:
            return self.outline_prefix
        return self.refine_prefix

    def step_headers(
        self, problem: str, count: int, apply_chat_template: Callable[..., str] | None
    ) -> list[str]:
        """The text before each of ``count`` steps when a whole path is read at once (a PRM): before step 1
        everything up to its ``Step 1:`` line, then the separator before each next step. Joined with the
        steps (each stripped), they give exactly what the policy was shown before each step, forced
        openings being part of the steps. ``native`` gives the env's own headers.
        """
        if self.instruction is None:
            from codegym.steps import PROBLEM_HEADER, step_header

            first = f"{PROBLEM_HEADER}\n{problem.strip()}\n\n{step_header(1)}\n"
            return [first] + [f"\n\n{step_header(j)}\n" for j in range(2, count + 1)]
        head = self.build_steps(problem, [])
        opening = ProtocolPrompt(messages=head.messages[:-1]).render(apply_chat_template)
        return [opening + "Step 1:\n"] + [f"\n\nStep {j}:\n" for j in range(2, count + 1)]

    def finish(self, built: ProtocolPrompt, generated: str, stopped: bool) -> str:
        """The step text from a sample: the forced prefix, the generated text and, for a code block
        that stopped at its closing fence, the fence (a block cut by the token limit stays open)."""
        if not built.prefix:  # a model that labels its step itself ("**Step 2:**"): the env numbers steps
            generated = _OWN_STEP_LABEL.sub("", generated, count=1)
        text = built.prefix + generated
        if built.is_chat and stopped:
            code = extract_code(text)
            if code is not None and not code[1]:
                text = text.rstrip() + "\n```"
        return text

    def completion_for(self, built: ProtocolPrompt, step: str) -> str:
        """What the model writes for ``step`` after ``built`` (for SFT): the step without the forced prefix,
        then the step line that ends it."""
        if not step.startswith(built.prefix):
            raise UserError(f"step does not open with the protocol's forced prefix {built.prefix!r}")
        return step[len(built.prefix) :] + ("\n\n" if built.is_chat else "")


NATIVE = PromptProtocol(name="native", extra_stop=())
THINK = PromptProtocol(
    name="think",
    instruction=THINK_INSTRUCTION,
    outline_prefix="Outline:",
    refine_prefix="Refine:",
    code_step=3,
)
DIRECT = PromptProtocol(name="direct", instruction=DIRECT_INSTRUCTION, code_step=1)

PROTOCOLS: dict[str, PromptProtocol] = {p.name: p for p in (NATIVE, THINK, DIRECT)}


PROTOCOL_FILE = "codegym_protocol.json"


def save_protocol(protocol: PromptProtocol, folder: str | PathLike[str]) -> Path:
    """Write ``protocol`` beside a trained model, so that loading the model prompts it the same way."""
    import json

    path = Path(folder) / PROTOCOL_FILE
    path.write_text(json.dumps(asdict(protocol), indent=2) + "\n")
    return path


def read_protocol(folder: str | PathLike[str]) -> PromptProtocol | None:
    """The protocol saved beside a model by :func:`save_protocol`, or None."""
    import json

    path = Path(folder) / PROTOCOL_FILE
    if not path.is_file():
        return None
    fields = json.loads(path.read_text())
    fields["extra_stop"] = tuple(fields.get("extra_stop", ()))
    return PromptProtocol(**fields)


def get_protocol(protocol: str | PromptProtocol, **overrides: Any) -> PromptProtocol:
    """A protocol by name (``native``, ``think``, ``direct``) or as given, with fields overridden.

    Example:
        >>> get_protocol("think", code_step=4).code_step
        4

    Raises:
        UserError: an unknown name.
    """
    if isinstance(protocol, PromptProtocol):
        found = protocol
    elif protocol in PROTOCOLS:
        found = PROTOCOLS[protocol]
    else:
        raise UserError(f"unknown prompt protocol {protocol!r}; choose one of {sorted(PROTOCOLS)}")
    if not overrides:
        return found
    from dataclasses import replace

    return replace(found, **overrides)
