"""``codegym solve``: solve one task or a task set with a search agent, a policy and (maybe) a PRM.

The agents are :mod:`codegym.agents`' (greedy, sampling, best-of-N, PRM beam search, MCTS), run with
``solve_many`` on batches of tasks (one policy call per depth and one sandbox batch carry the whole
batch). The table shows, per task, whether the answer passes every hidden test, its pass rate on the
tests that paid (visible), and what the agent spent; ``--out`` writes one JSON line per episode.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codegym.cli import UsageError, command, print_table
from codegym.cli.common import (
    add_model_options,
    add_ray_options,
    add_sandbox_option,
    add_seed_option,
    add_task_options,
    check_model_spec,
    fraction,
    model_options,
    non_negative_float,
    positive_float,
    positive_int,
    rate,
    safe_filename,
    select_tasks,
    write_jsonl,
)
from codegym.options import plain_text

if TYPE_CHECKING:
    from codegym.agents import Agent, Episode

# The agents of codegym.agents.registry that the command line offers (tests check the two agree).
AGENTS = ("greedy", "sample", "best-of-n", "beam", "mcts")

# Which agents each agent option applies to (the option's dest: agents); every dest but html_dir is a
# keyword argument of those agents' classes (tests check it against the registry).
AGENT_OPTIONS: dict[str, tuple[str, ...]] = {
    "n": ("best-of-n",),
    "verifier": ("best-of-n", "beam"),
    "aggregation": ("best-of-n", "beam"),
    "beam_width": ("beam",),
    "expansions": ("beam", "mcts"),
    "simulations": ("mcts",),
    "selection": ("mcts",),
    "evaluation": ("mcts",),
    "c": ("mcts",),
    "mix": ("mcts",),
    "alpha": ("mcts",),
    "rollout_temperature": ("mcts",),
    "stop_on_solve": ("mcts",),
    "temperature": ("sample", "best-of-n", "beam", "mcts"),
    "html_dir": ("mcts",),
}


def agent_defaults(dest: str) -> str:
    """What an agent option is when left out, read from the agent registry (the agents' own signatures,
    and where the signature says None, the agent's docstring), so the help cannot drift from the library.

    Example:
        >>> agent_defaults("expansions")
        'default: 4 for beam, 3 for mcts'
    """
    from codegym.agents.registry import agent_spec, option_defaults
    from codegym.options import docstring_args

    values: dict[str, str] = {}
    for name in AGENT_OPTIONS[dest]:
        default = option_defaults(name).get(dest)
        if default is None:
            # e.g. "the exploration constant: UCT's c (O1-Coder: 2.0) or ...": the part after the gloss
            text = plain_text(docstring_args(agent_spec(name).cls).get(dest, "unset"))
            values[name] = text.split(": ", 1)[-1].rstrip(".")
        else:
            values[name] = ("on" if default else "off") if isinstance(default, bool) else str(default)
    if len(set(values.values())) == 1:
        return f"default: {next(iter(values.values()))}"
    return "default: " + ", ".join(f"{value} for {name}" for name, value in values.items())


# Budget options: (flag, Budget field, type, help).
BUDGET_OPTIONS = (
    ("--budget-steps", "steps_generated", positive_int, "steps the policy may write per task"),
    ("--budget-tokens", "tokens", positive_int, "tokens the policy may generate per task"),
    ("--budget-policy-calls", "policy_calls", positive_int, "policy calls per task"),
    ("--budget-prm-calls", "prm_calls", positive_int, "paths the PRM may score per task"),
    ("--budget-sandbox-runs", "sandbox_runs", positive_int, "programs the sandbox may run per task"),
    ("--budget-seconds", "wall_s", positive_float, "wall-clock seconds per task"),
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "solve",
        help="solve one task or a task set with a search agent (greedy, sampling, best-of-N, beam, MCTS)",
        description="Solve tasks with a search agent and a policy, and print per task whether the answer "
        "passes the hidden tests, its visible-test pass rate and what it spent. Visible tests pay and "
        "guide the search; hidden tests only judge. Example: codegym solve --agent mcts --simulations 8 "
        "--n-tasks 20 --visible-tests tcg --out episodes.jsonl",
        populate=_solve_options,
    )
    command(parser, _solve)


def _solve_options(parser: argparse.ArgumentParser) -> None:
    """Built on first use: the agent options' defaults come from the agents' signatures."""
    add_solve_options(parser, AGENTS, default_agent="greedy", endless_default=10)
    parser.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="write one JSON line per episode: steps, code, verdicts, rewards and spend (default: none)",
    )
    parser.add_argument(
        "--html-dir",
        default=None,
        metavar="DIR",
        help="MCTS only: write each task's search tree as DIR/<task>.html (default: none)",
    )


def add_solve_options(
    parser: argparse.ArgumentParser, agents: Sequence[str], *, default_agent: str, endless_default: int
) -> None:
    """The options ``solve`` and ``search`` share: models, agent, budget, env and tasks. Defaults that
    the library has (the agents', the env's) are read from it."""
    from codegym.agents import Agent
    from codegym.env import CodeReasonEnv
    from codegym.options import keyword_defaults

    models = parser.add_argument_group("agent and models")
    models.add_argument(
        "--agent",
        choices=agents,
        default=default_agent,
        help="greedy: the likeliest step at each depth; sample: one sampled path; best-of-n: n sampled "
        "paths, the verifier picks one; beam: PRM-guided step-level beam search; mcts: Monte Carlo tree "
        "search (O1-Coder) (default: %(default)s)"
        if len(agents) > 1
        else "the search agent (default: %(default)s)",
    )
    models.add_argument(
        "--policy",
        default="tiny",
        help="the policy that writes steps: tiny, smollm2-135m-instruct or qwen2.5-coder-0.5b-instruct "
        "(built in), a local path, a hub id or openai:<url>/<model> (default: %(default)s)",
    )
    models.add_argument(
        "--prm",
        default="tiny",
        help="the process reward model, loaded only when the agent needs one (beam, a prm/both "
        "verifier, MCTS prm/mix evaluation): tiny, a local path or a hub id (default: %(default)s)",
    )
    models.add_argument(
        "--max-new-tokens",
        type=positive_int,
        default=keyword_defaults(Agent)["max_new_tokens"],
        help="the longest step, in tokens (default: %(default)s)",
    )
    add_seed_option(models)

    agent = parser.add_argument_group(
        "agent options", "each applies to the agents named; left out, the agent's own default is used"
    )
    agent.add_argument(
        "--temperature",
        type=non_negative_float,
        default=None,
        help="sampling temperature",
    )
    agent.add_argument("--n", type=positive_int, default=None, help="paths per task")
    agent.add_argument(
        "--verifier",
        choices=("visible", "prm", "both"),
        default=None,
        help="what ranks finished paths: the visible-test pass rate, the PRM's aggregated score, or both",
    )
    agent.add_argument(
        "--aggregation",
        choices=("min", "prod", "last", "mean"),
        default=None,
        help="how a path's step scores become one",
    )
    agent.add_argument("--beam-width", type=positive_int, default=None, help="partial paths kept per depth")
    agent.add_argument(
        "--expansions",
        type=positive_int,
        default=None,
        help="next steps sampled per kept path or expanded node",
    )
    agent.add_argument("--simulations", type=positive_int, default=None, help="simulations per task")
    agent.add_argument(
        "--selection",
        choices=("uct", "puct"),
        default=None,
        help="UCT (O1-Coder) or PUCT with policy priors (OpenR)",
    )
    agent.add_argument(
        "--evaluation",
        choices=("prm", "rollout", "mix"),
        default=None,
        help="how a new node is valued: the PRM's score of its step, a greedy rollout to code, or --mix "
        "of both",
    )
    agent.add_argument(
        "--c",
        type=non_negative_float,
        default=None,
        help="exploration constant",
    )
    agent.add_argument(
        "--mix",
        type=fraction,
        default=None,
        help="the PRM's weight with --evaluation mix",
    )
    agent.add_argument(
        "--alpha",
        type=fraction,
        default=None,
        help="a code path's value is alpha*compiled + (1-alpha)*pass_rate",
    )
    agent.add_argument(
        "--rollout-temperature",
        type=non_negative_float,
        default=None,
        help="temperature of rollouts, 0 is greedy",
    )
    agent.add_argument(
        "--stop-on-solve",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="stop a task's search once a path passes every visible test",
    )

    for action in agent._group_actions:
        action.help = (
            f"{', '.join(AGENT_OPTIONS[action.dest])}: {action.help} ({agent_defaults(action.dest)})"
        )

    add_model_options(parser)
    budget = parser.add_argument_group("budget per task", "left out, the agent stops at its own size")
    for flag, field, kind, text in BUDGET_OPTIONS:
        budget.add_argument(flag, dest=f"budget_{field}", type=kind, default=None, metavar="N", help=text)

    env = parser.add_argument_group("environment")
    env.add_argument(
        "--visible-tests",
        choices=("task", "tcg"),
        default="tcg",
        help="the tests that pay and that verifiers see: tcg, written by the oracle test generator from "
        "the signature and examples (never a hidden input; a task it cannot serve falls back to its own), "
        "or task, the task's own visible tests, which for sources without any are the hidden ones, so "
        "the search then sees the tests that judge it (episodes record visible_source) "
        "(default: %(default)s)",
    )
    env.add_argument(
        "--max-steps",
        type=positive_int,
        default=keyword_defaults(CodeReasonEnv)["max_steps"],
        help="steps per episode, the code step included (default: %(default)s)",
    )
    add_sandbox_option(env)
    env.add_argument(
        "--batch-size",
        type=positive_int,
        default=16,
        help="tasks solved together in one solve_many call (one policy call per depth carries them all); "
        "the progress bar advances per batch (default: %(default)s)",
    )
    add_task_options(parser, endless_default=endless_default)
    add_ray_options(parser)


# -- running an agent --------------------------------------------------------------------------------


def check_agent_options(args: argparse.Namespace) -> None:
    """Refuse an option that does not apply to the chosen agent (it would be silently ignored)."""
    for dest, agents in AGENT_OPTIONS.items():
        if getattr(args, dest, None) is not None and args.agent not in agents:
            flag = "--" + dest.replace("_", "-")
            raise UsageError(
                f"{flag} does not apply to --agent {args.agent}; it is an option of {', '.join(agents)}"
            )
    if args.temperature == 0 and args.agent != "sample":
        raise UsageError(
            f"--agent {args.agent} samples several steps or paths, so --temperature must be > 0 "
            "(for greedy decoding use --agent greedy)"
        )


def needs_prm(args: argparse.Namespace) -> bool:
    """Whether ``--agent`` with the options given scores paths with a PRM (:mod:`codegym.agents.registry`)."""
    from codegym.agents.registry import needs_prm as agent_needs_prm

    return agent_needs_prm(args.agent, _given_options(args))


def make_budget(args: argparse.Namespace):
    from codegym.agents import Budget

    return Budget(**{field: getattr(args, f"budget_{field}") for _, field, _, _ in BUDGET_OPTIONS})


def _given_options(args: argparse.Namespace) -> dict[str, Any]:
    """The agent options given on the command line that apply to ``--agent`` (the rest stay defaults)."""
    return {
        dest: getattr(args, dest)
        for dest, agents in AGENT_OPTIONS.items()
        if dest != "html_dir" and args.agent in agents and getattr(args, dest, None) is not None
    }


def make_agent(args: argparse.Namespace, policy: Any, prm: Any) -> Agent:
    """The ``--agent`` with its options, built through the agent registry."""
    from codegym.agents.registry import make_agent as build

    prm = prm if needs_prm(args) else None
    return build(
        args.agent, policy, prm, seed=args.seed, max_new_tokens=args.max_new_tokens, **_given_options(args)
    )


def _agents(settings: dict[str, Any], policy: Any, prm: Any) -> dict[str, Agent]:
    """:func:`codegym.play.play_tasks`' agent factory: the one ``--agent`` (picklable, for Ray workers)."""
    args = argparse.Namespace(**settings)
    return {args.agent: make_agent(args, policy, prm)}


# Set by the command machinery; not data, and not needed (or picklable) on a Ray worker.
_LOCAL_ONLY = ("run", "command_parser")


def run_agent(
    args: argparse.Namespace, *, progress_label: str = "solving"
) -> tuple[str, list[Episode], float]:
    """Choose the tasks, load the models (here, or on each Ray worker with ``--ray-address``), and solve
    every task ``--batch-size`` at a time; returns (the agent's name, episodes, seconds)."""
    from tqdm import tqdm

    from codegym.play import Players, load_players, play_tasks

    check_agent_options(args)
    check_model_spec("--policy", args.policy)
    if needs_prm(args):
        check_model_spec("--prm", args.prm)
    budget = make_budget(args)
    tasks = select_tasks(args)
    settings = {key: value for key, value in vars(args).items() if key not in _LOCAL_ONLY}
    players = Players(
        args.policy,
        model_options(args, args.policy),
        prm=args.prm if needs_prm(args) else None,
        prm_options={"device": args.device} if getattr(args, "device", None) else {},
        sandbox=args.sandbox,
    )
    options = {
        "batch_size": args.batch_size,
        "env_options": {
            "max_steps": args.max_steps,
            "visible_tests": "tcg" if args.visible_tests == "tcg" else None,
        },
        "budget": budget,
        "seed": args.seed,
    }
    if args.ray_address:  # models load on the workers, so the time counts their loading
        started = time.perf_counter()
        with tqdm(total=len(tasks), desc=progress_label, unit="task", file=sys.stderr) as bar:
            played = play_tasks(
                tasks,
                functools.partial(_agents, settings),
                players,
                ray_address=args.ray_address,
                ray_workers=args.ray_workers,
                on_batch=bar.update,
                **options,
            )
    else:
        loaded = load_players(players)
        try:
            _agents(settings, loaded.policy, loaded.prm)  # a bad option fails here, before any task runs
            started = time.perf_counter()
            with tqdm(total=len(tasks), desc=progress_label, unit="task", file=sys.stderr) as bar:
                played = play_tasks(
                    tasks, functools.partial(_agents, settings), loaded, on_batch=bar.update, **options
                )
        finally:
            loaded.close()
    episodes = played.get(args.agent, [])
    return (episodes[0].agent if episodes else args.agent), episodes, time.perf_counter() - started


def episode_record(episode: Episode) -> dict[str, Any]:
    """One episode as plain data (a JSON line)."""
    record = {
        "task_id": episode.task_id,
        "agent": episode.agent,
        "solved": episode.hidden_all_passed,
        "hidden_pass_rate": episode.hidden_pass_rate,
        "visible_pass_rate": episode.visible_pass_rate,
        "visible_source": episode.visible_source,
        "end": episode.end,
        "steps": list(episode.steps),
        "code": episode.code,
        "rewards": list(episode.rewards),
        "total_reward": episode.total_reward,
        "spend": episode.spend.as_dict(),
    }
    if episode.tree is not None:
        record["nodes"] = len(episode.tree.nodes)
        record["simulations"] = episode.tree.simulations
        record["solved_by"] = episode.tree.solved_by
    return record


def print_episodes(episodes: Sequence[Episode], *, nodes: bool = False) -> None:
    """The per-task table, with a totals row."""
    header = ["task", "solved", "visible", "end", "steps", "policy calls", "tokens"]
    if nodes:
        header.append("nodes")
    rows: list[list[object]] = []
    for e in episodes:
        visible = "-" if e.visible_pass_rate is None else f"{e.visible_pass_rate:.2f}"
        row: list[object] = [
            e.task_id,
            "yes" if e.hidden_all_passed else "no",
            visible,
            e.end,
            e.spend.steps_generated,
            e.spend.policy_calls,
            e.spend.tokens,
        ]
        if nodes:
            row.append(len(e.tree.nodes) if e.tree is not None else "-")
        rows.append(row)
    n = len(episodes)
    visible_mean = sum(e.visible_pass_rate or 0.0 for e in episodes) / n
    total: list[object] = [
        "total",
        f"{sum(e.hidden_all_passed for e in episodes)}/{n}",
        f"{visible_mean:.2f}",
        "",
        sum(e.spend.steps_generated for e in episodes),
        sum(e.spend.policy_calls for e in episodes),
        sum(e.spend.tokens for e in episodes),
    ]
    if nodes:
        total.append(sum(len(e.tree.nodes) for e in episodes if e.tree is not None))
    rows.append(total)
    print_table(rows, header)


def summary_rows(agent: str, episodes: Sequence[Episode], seconds: float) -> list[tuple[str, str]]:
    """The key figures of a run (``agent``: the agent's name), for the summary table."""
    n = len(episodes)
    solved = sum(e.hidden_all_passed for e in episodes)
    visible_all = sum(e.visible_pass_rate == 1.0 for e in episodes)
    gamed = sum(e.visible_pass_rate == 1.0 and not e.hidden_all_passed for e in episodes)
    sources = sorted({e.visible_source for e in episodes if e.visible_source})
    return [
        ("agent", agent),
        ("tasks", str(n)),
        ("solved (hidden tests)", rate(solved, n)),
        ("all visible tests passed", f"{rate(visible_all, n)} (visible tests: {', '.join(sources) or '-'})"),
        ("passed visible, failed hidden", str(gamed)),
        ("ended without code", str(sum(e.code is None for e in episodes))),
        ("ASPR (solved / ended with code)", _aspr_text(episodes)),
        ("steps generated per task", f"{sum(e.spend.steps_generated for e in episodes) / n:.1f}"),
        (
            "PRM calls / sandbox runs",
            f"{sum(e.spend.prm_calls for e in episodes)} / {sum(e.spend.sandbox_runs for e in episodes)}",
        ),
        ("time", f"{seconds:.1f} s"),
    ]


def _solve(args: argparse.Namespace) -> int:
    agent, episodes, seconds = run_agent(args)
    print_episodes(episodes, nodes=args.agent == "mcts")
    print()
    rows = summary_rows(agent, episodes, seconds)
    if args.out:
        path = write_jsonl(args.out, (episode_record(e) for e in episodes))
        rows.append(("episodes written to", str(path)))
    if args.html_dir:
        from codegym.agents import write_html

        for episode in episodes:
            write_html(episode.tree, Path(args.html_dir) / f"{safe_filename(episode.task_id)}.html")
        rows.append(("search trees (HTML) in", str(args.html_dir)))
    print_table(rows)
    return 0


def _aspr_text(episodes: Sequence[Episode]) -> str:
    from codegym.evaluation import aspr

    value = aspr(episodes)
    return "n/a (no episode wrote code)" if value is None else f"{value:.3f}"
