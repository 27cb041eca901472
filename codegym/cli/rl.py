"""``codegym rl ppo|pg|rft``: reinforcement learning on CodeReason-v0.

- ``rl ppo``: stable-baselines3 PPO learns to choose among the policy LM's candidate steps
  (:func:`codegym.training.ppo.train_ppo`);
- ``rl pg``: the policy LM itself is fine-tuned by policy gradient, GRPO or REINFORCE, on the env's
  rewards (:func:`codegym.training.policy_gradient.train_policy_gradient`);
- ``rl rft``: rejection-sampling fine-tuning, the policy LM learns its own episodes that the reward kept
  (:func:`codegym.training.rejection_sampling.train_rejection_sampling`).

Options are generated from those functions' keyword arguments and docstrings (:mod:`codegym.options`),
when the command is used (the modules import torch). Each resumes a run found in ``--out``.
"""

from __future__ import annotations

import argparse

from codegym.cli import command, print_table
from codegym.errors import require_extra
from codegym.options import add_function_arguments, function_kwargs


def add_commands(commands: argparse._SubParsersAction) -> None:
    rl = commands.add_parser(
        "rl",
        help="reinforcement learning on the env: SB3 PPO over candidate steps, LM policy gradient, or "
        "rejection-sampling fine-tuning",
        description="Train on CodeReason-v0's rewards. ppo: stable-baselines3 PPO chooses among K candidate "
        "steps of the policy LM; pg: the policy LM itself is trained by policy gradient (GRPO or "
        "REINFORCE); rft: the policy LM is fine-tuned on its own episodes whose return reached a "
        "threshold. A run in --out is resumed.",
    )
    rl_commands = rl.add_subparsers(dest="rl_command", required=True, metavar="ALGORITHM")
    ppo = rl_commands.add_parser(
        "ppo",
        help="SB3 PPO choosing among the policy LM's candidate steps (CandidateChoiceEnv)",
        description="Train stable-baselines3's PPO (MlpPolicy) on CandidateChoiceEnv: at each state the "
        "policy LM proposes --candidates steps and PPO picks one. Checkpoints, TensorBoard logs, "
        "model.zip and metrics.json go to --out; a run there is resumed. Example: codegym rl ppo "
        "--out runs/ppo --total-timesteps 256 --task-options '{\"max_ops\": 1}'",
        populate=_ppo_options,
    )
    command(ppo, _ppo)
    pg = rl_commands.add_parser(
        "pg",
        help="fine-tune the policy LM by policy gradient (GRPO or REINFORCE) on the env's rewards",
        description="Fine-tune the policy LM on CodeReason episodes by policy gradient: GRPO's group-"
        "relative advantages or REINFORCE with a running baseline, under any reward scheme. Checkpoints "
        "(load_policy(path) loads one) and metrics.json go to --out; a run there is resumed. Example: "
        "codegym rl pg --out runs/pg --iterations 20 --reward dense --process-reward tiny",
        populate=_pg_options,
    )
    command(pg, _pg)
    rft = rl_commands.add_parser(
        "rft",
        help="rejection-sampling fine-tuning: the policy LM learns its own episodes that the reward kept",
        description="Rounds of expert iteration: play episodes of fresh tasks, keep those whose return "
        "reaches --min-return, fine-tune the policy LM on them. Each round's policy (load_policy(path) "
        "loads it) and rounds.json go to --out; a run there is resumed. Example: codegym rl rft --out "
        "runs/rft --rounds 2 --tasks-per-round 200",
        populate=_rft_options,
    )
    command(rft, _rft)


def _ppo_options(parser: argparse.ArgumentParser) -> None:
    require_extra("stable_baselines3", "rl", "codegym rl ppo")
    from codegym.training.ppo import train_ppo

    parser.add_argument(
        "--out", default="runs/ppo", metavar="DIR", help="the run's folder (default: %(default)s)"
    )
    add_function_arguments(parser, train_ppo)


def _pg_options(parser: argparse.ArgumentParser) -> None:
    from codegym.training.policy_gradient import train_policy_gradient

    parser.add_argument(
        "--out", default="runs/pg", metavar="DIR", help="the run's folder (default: %(default)s)"
    )
    add_function_arguments(parser, train_policy_gradient)


def _rft_options(parser: argparse.ArgumentParser) -> None:
    from codegym.training.rejection_sampling import train_rejection_sampling

    parser.add_argument(
        "--out", default="runs/rft", metavar="DIR", help="the run's folder (default: %(default)s)"
    )
    add_function_arguments(parser, train_rejection_sampling)


def _reward(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _ppo(args: argparse.Namespace) -> int:
    from codegym.training.ppo import train_ppo

    run = train_ppo(args.out, **function_kwargs(args, train_ppo))
    episodes = run.episodes
    window = min(10, max(1, len(episodes) // 2))
    span = f"{window} episode{'s' if window > 1 else ''}"
    print_table(
        [
            ("algorithm", "PPO over candidate steps"),
            ("timesteps", str(run.num_timesteps)),
            ("resumed from", "-" if run.resumed_from is None else f"{run.resumed_from} timesteps"),
            ("episodes", str(len(episodes))),
            (f"mean reward, first {span}", _reward(run.mean_reward("first", window))),
            (f"mean reward, last {span}", _reward(run.mean_reward("last", window))),
            ("ended with code", f"{sum(e.ended_with_code for e in episodes)}/{len(episodes)}"),
            ("model", str(run.model_path)),
            ("metrics", str(run.metrics_path)),
            ("TensorBoard logs", str(run.tensorboard_dir)),
        ]
    )
    return 0


def _pg(args: argparse.Namespace) -> int:
    from codegym.training.policy_gradient import train_policy_gradient

    result = train_policy_gradient(args.out, **function_kwargs(args, train_policy_gradient))
    metrics = result.metrics
    first, last = (metrics[0], metrics[-1]) if metrics else (None, None)
    print_table(
        [
            ("algorithm", f"policy gradient ({args.advantage})"),
            ("iterations", str(result.iterations)),
            ("resumed from", f"{result.resumed_from} iterations" if result.resumed_from else "-"),
            ("mean reward, first iteration", _reward(first and first.mean_reward)),
            ("mean reward, last iteration", _reward(last and last.mean_reward)),
            (
                "solve rate, first / last",
                f"{_reward(first and first.solve_rate)} / {_reward(last and last.solve_rate)}",
            ),
            ("checkpoint", result.checkpoint),
            ("metrics", f"{result.out_dir}/metrics.json"),
        ]
    )
    return 0


def _rft(args: argparse.Namespace) -> int:
    from codegym.training.rejection_sampling import train_rejection_sampling

    result = train_rejection_sampling(args.out, **function_kwargs(args, train_rejection_sampling))
    rounds = result.rounds
    print_table(
        [
            ("algorithm", "rejection-sampling fine-tuning"),
            ("rounds", str(len(rounds))),
            ("resumed from", f"{result.resumed_from} rounds" if result.resumed_from else "-"),
            ("episodes kept per round", ", ".join(f"{r.kept}/{r.episodes}" for r in rounds) or "-"),
            ("solve rate per round", ", ".join(f"{r.solve_rate:.3f}" for r in rounds) or "-"),
            ("policy", result.policy),
            ("metrics", f"{result.out_dir}/rounds.json"),
        ]
    )
    return 0
