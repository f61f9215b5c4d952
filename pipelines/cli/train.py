"""`mura train`, `mura evaluate RUN_ID`, `mura tune`: thin runners over pipelines.training/evaluation."""

from __future__ import annotations

import argparse
from pathlib import Path

from mura_core.contracts import STUDY_KAPPA, TASK_CHOICES, interval_names
from mura_core.settings import get_settings
from pipelines.cli.common import add_json_flag, emit, json_stdout_guard
from pipelines.cli.parsing import (
    add_old_spellings,
    architecture_help,
    architecture_list,
    positive_int,
    preset_help,
    preset_name,
    preset_names,
)
from pipelines.training import ARCHITECTURE_CHOICES


def _data_arguments(parser) -> None:
    parser.add_argument("--data", help="folder holding MURA-v1.1/ (default: data/)")
    parser.add_argument("--manifest", help="manifest parquet (default: built now from --data)")


def _config_arguments(parser) -> None:
    preset = parser.add_argument("--preset", type=preset_name, help=preset_help())
    preset.completer = lambda **_: preset_names()  # argcomplete: tab completes the names
    arch = parser.add_argument(
        "--architectures", type=architecture_list, metavar="ARCH[,ARCH]", help=architecture_help()
    )
    arch.completer = lambda **_: list(ARCHITECTURE_CHOICES)
    parser.add_argument(
        "--task",
        choices=TASK_CHOICES,
        metavar="TASK",
        help="binary, binary:XR_<PART> (e.g. binary:XR_WRIST) or 14cls",
    )
    parser.add_argument("--epochs", type=positive_int, help="training epochs (the preset's when not given)")
    parser.add_argument("--image-size", help="input size in pixels: 320 or 320x320")
    parser.add_argument("--batch-size", type=positive_int, help="images per step (per device)")
    parser.add_argument("--learning-rate", type=float, help="Adam's initial learning rate")
    parser.add_argument("--fine-tune-layers", type=int, help="backbone layers unfrozen in phase 2 (-1 = all)")
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="flips, rotations, zoom, contrast (the preset's when not given)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other training setting of the preset (repeatable)",
    )
    add_old_spellings(parser)  # --arch, --augment true|false


def overrides_from(args) -> dict:
    """CLI flags -> the overrides dict of resolve_config (unset flags are left out)."""
    from mura_core.errors import ConfigError

    overrides = {
        "architectures": args.architectures,
        "task": args.task,
        "epochs": args.epochs,
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "fine_tune_layers": args.fine_tune_layers,
        "augment": args.augment,
    }
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set dropout=0.3")
        key, value = item.split("=", 1)
        overrides[key.strip().replace("-", "_")] = value.strip()
    return {key: value for key, value in overrides.items() if value is not None}


def _interval(metrics: dict) -> str:
    low, high = (metrics.get(name) for name in interval_names(STUDY_KAPPA))
    return f" [{low:.3f}, {high:.3f}] (95 % bootstrap, valid)" if low is not None and high is not None else ""


def _data_root(args) -> Path:
    return Path(args.data).resolve() if args.data else get_settings().data_dir


def manifest_for(args):
    """The manifest path given, else one built now from the data folder."""
    if args.manifest:
        return Path(args.manifest)
    from pipelines.data import build_manifest

    return build_manifest(_data_root(args)).frame


def _train(args) -> int:
    from pipelines.flows.retrain import train_evaluate_export
    from pipelines.training import resolve_config

    overrides = overrides_from(args)
    resolve_config(args.preset, overrides)  # bad settings fail before data is read
    manifest = Path(args.manifest) if args.manifest else None
    with json_stdout_guard(args):
        runs = train_evaluate_export(
            args.preset, overrides, _data_root(args), manifest, evaluate=not args.no_evaluate
        )
        for run in runs:
            if run["table"]:  # the MURA-paper table goes to the terminal in both modes (stderr under --json)
                members = f", ensemble of runs {', '.join(run['members'])}" if run.get("members") else ""
                print(
                    f"\n{run['arch']} ({run['task']}), run {run['run_id']}{members}\n{run['table']}",
                    flush=True,
                )
    emit(
        {"run_id": runs[0]["run_id"], "metrics": runs[0]["metrics"], "runs": runs},
        args.json,
        "\n".join(
            f"run {run['run_id']}: {run['arch']} {run['task']} study kappa "
            f"{run['metrics'].get(STUDY_KAPPA, float('nan')):.3f}" + _interval(run["metrics"])
            for run in runs
        ),
    )
    return 0


def _evaluate(args) -> int:
    from pipelines.evaluation import evaluate_run
    from pipelines.monitoring import record_reference

    manifest = Path(args.manifest) if args.manifest else None
    data_root = Path(args.data).resolve() if args.data else None
    with json_stdout_guard(args):
        result = evaluate_run(args.run_id, manifest, data_root, threshold=args.threshold)
        record_reference(args.run_id, data_root, manifest)  # what `mura monitor` compares releases with
    emit({"run_id": result.run_id, "metrics": result.metrics, "table": result.table}, args.json, result.table)
    return 0


def _tune(args) -> int:
    from pipelines.training import resolve_config, tune

    config = resolve_config(args.preset, overrides_from(args))
    with json_stdout_guard(args):
        result = tune(
            config, manifest_for(args), _data_root(args), max_trials=args.max_trials, preset_name=args.name
        )
    emit(
        result,
        args.json,
        f"best trial {result['best_trial']} (holdout {result['objective']} {result['best_score']:.4f}); "
        f"preset {result['preset']} written to {result['preset_file']}; parent run {result['run_id']}",
    )
    return 0


def register(subparsers) -> None:
    """Add `train`, `evaluate` and `tune` to the `mura` command."""
    train = subparsers.add_parser(
        "train", help="train a model (tracked in MLflow), then evaluate it on valid"
    )
    _config_arguments(train)
    _data_arguments(train)
    train.add_argument("--no-evaluate", action="store_true", help="skip the evaluation on valid")
    add_json_flag(train)
    train.set_defaults(handler=_train)

    evaluate = subparsers.add_parser("evaluate", help="study-level evaluation of a run's model on valid")
    evaluate.add_argument("run_id", metavar="RUN_ID", help="MLflow run id of a training run (`mura runs`)")
    _data_arguments(evaluate)
    evaluate.add_argument(
        "--threshold",
        type=float,
        help="report at this fixed threshold (default: the run's own operating point, fitted on holdout)",
    )
    add_json_flag(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    tune = subparsers.add_parser("tune", help="Keras Tuner search; each trial a nested MLflow run")
    _config_arguments(tune)
    _data_arguments(tune)
    tune.add_argument(
        "--max-trials", type=positive_int, default=None, help="trials to run (default from params.yaml)"
    )
    tune.add_argument("--name", help="name of the preset written with the best values (default tuned_<arch>)")
    add_json_flag(tune)
    tune.set_defaults(handler=_tune)
