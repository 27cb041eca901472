"""``codegym train policy|prm|tcg``: train the policy, the process reward model or the test generator.

Options are made from the training function's own keyword arguments and docstring
(:mod:`codegym.options`), so ``--help`` and the library cannot drift apart. They are built when the
command is used (the training modules import torch and datasets).
"""

from __future__ import annotations

import argparse

from codegym.cli import command, print_table
from codegym.options import add_function_arguments, function_kwargs


def add_commands(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train the policy, the process reward model or the test generator",
        description="Train one of O1-Coder's three models; each default rebuilds the shipped tiny checkpoint.",
    )
    train_commands = train.add_subparsers(dest="train_command", required=True, metavar="MODEL")
    policy = train_commands.add_parser(
        "policy",
        help="SFT a policy on reasoning episodes (TRL SFTTrainer)",
        description="Supervised fine-tuning on whole reasoning episodes. With no --base, builds the "
        "built-in tiny model from scratch and trains it on the synthetic tasks' reference episodes "
        "(this is how the shipped tiny-policy checkpoint was made: --out "
        "codegym/models/checkpoints/tiny-policy).",
        populate=_policy_options,
    )
    command(policy, _train_policy)

    prm = train_commands.add_parser(
        "prm",
        help="train a process reward model on step labels (point-wise or pair-wise)",
        description="Train a PRM: point-wise on hard or soft step labels, or pair-wise (Bradley-Terry) on "
        "sibling steps. Without --data, steps of synthetic tasks are labelled by execution. With the "
        "defaults this rebuilds the shipped tiny-prm checkpoint (--out codegym/models/checkpoints/tiny-prm).",
        populate=_prm_options,
    )
    command(prm, _train_prm)

    tcg = train_commands.add_parser(
        "tcg",
        help="train a model-based test case generator: SFT, then DPO against shuffled outputs",
        description="O1-Coder's TCG training: SFT on the tasks' own test cases, then DPO with chosen = "
        "correct cases and rejected = the same inputs with shuffled outputs; validity is measured on "
        "held-out synthetic tasks. With the defaults this rebuilds the shipped tiny-tcg checkpoint "
        "(--out codegym/models/checkpoints/tiny-tcg).",
        populate=_tcg_options,
    )
    command(tcg, _train_tcg)


def _policy_options(parser: argparse.ArgumentParser) -> None:
    from codegym.training.policy_sft import train_policy

    parser.add_argument(
        "--out", default="runs/policy", help="where the model is saved (default: %(default)s)"
    )
    add_function_arguments(parser, train_policy, skip=("episodes",))


def _prm_options(parser: argparse.ArgumentParser) -> None:
    from codegym.training.prm import train_prm

    parser.add_argument("--out", default="runs/prm", help="where the PRM is saved (default: %(default)s)")
    add_function_arguments(parser, train_prm)


def _tcg_options(parser: argparse.ArgumentParser) -> None:
    from codegym.training.tcg import train_tcg

    parser.add_argument("--out", default="runs/tcg", help="where the model is saved (default: %(default)s)")
    add_function_arguments(parser, train_tcg)


def _train_policy(args: argparse.Namespace) -> int:
    from codegym.training.policy_sft import train_policy

    result = train_policy(args.out, **function_kwargs(args, train_policy))
    print_table(
        [
            ("saved to", result.out_dir),
            ("episodes", str(result.examples)),
            ("optimizer steps", str(result.steps)),
            ("parameters", f"{result.parameters:,}"),
            ("final loss", f"{result.final_loss:.4f}"),
            ("training time", f"{result.seconds:.0f} s"),
        ]
    )
    return 0


def _train_prm(args: argparse.Namespace) -> int:
    from codegym.training.prm import train_prm

    result = train_prm(args.out, **function_kwargs(args, train_prm))
    rows = [
        ("saved to", str(result.out_dir)),
        ("objective", f"{result.objective} ({result.labels} labels)"),
        ("training examples", str(result.examples)),
        ("optimizer steps", str(result.optimizer_steps)),
        ("final loss", f"{result.final_loss:.4f}"),
        ("training time", f"{result.train_seconds:.0f} s"),
    ]
    if result.evaluation is not None:
        rows += [
            ("held-out step AUC", f"{result.evaluation.auc:.3f}"),
            ("sibling pair accuracy", f"{result.evaluation.pair_accuracy:.3f}"),
        ]
    print_table(rows)
    return 0


def _train_tcg(args: argparse.Namespace) -> int:
    from codegym.training.tcg import train_tcg

    result = train_tcg(args.out, **function_kwargs(args, train_tcg))
    rows = [("saved to", str(result.out_dir)), ("SFT examples", str(result.sft_examples))]
    rows += [("DPO pairs", str(result.dpo_pairs))]
    rows += [
        (f"validity after {stage}", f"{evaluation.validity_rate:.1%}")
        for stage, evaluation in result.evaluations.items()
    ]
    rows += [("training time", f"{result.seconds.get('total', 0.0):.0f} s")]
    print_table(rows)
    return 0
