"""The `kosov` command: `kosov <command> [Hydra overrides]`.

    kosov train experiment=smoke-sft                      # one run
    kosov train experiment=smoke-sft peft.r=32            # any recipe key can be overridden
    kosov train -m experiment=smoke-sft peft.r=8,16       # a sweep, one run folder per job
    kosov train experiment=smoke-sft --cfg job            # print the composed recipe and stop

User errors (a bad recipe value, a malformed data row, a GPU-only feature on CPU) print what, where and how
to fix, without a traceback, and exit with status 2. A run (or sweep) stopped by a signal (SIGTERM, SLURM's warning)
exits with status 75 (STOPPED_EXIT, EX_TEMPFAIL): run the command it names, with resume=true, again.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

from training import __version__
from training.config import MIRROR_OFF
from training.recipes import recipes_dir
from training.errors import KosovError
from training.console_log import setup_logging
from training.sweep_jobs import (FAILED_JOB, FAILED_TRIAL, STOPPED_EXIT, STOPPED_JOB, exit_status_for_slurm,
                                 job_failed, job_failures_reported, optuna_failures_reported, sweep_folder,
                                 sweep_resume, sweep_stopped)

log = logging.getLogger("kosov")

COMMANDS: dict[str, str] = {
    "synth": "Korean training data: generators (math, LLM-driven), quality gates, a data card",
    "train": "SFT or GRPO with LoRA / QLoRA / DoRA, or a full fine-tune (TRL)",
    "eval": "Korean benchmarks (lm-eval) and kosov's own evals, base vs adapted, with a report",
    "serve": "an OpenAI-compatible server (/v1/chat/completions) for the recipe's model and serve.adapter",
    "publish": "a release folder (adapter, model card, lineage, eval) and, with push=true, the Hub upload",
    "convert": "a KORMo checkpoint as a plain Llama checkpoint (no remote code): kosov convert kormo SRC DST",
    "mirror": "download a model and benchmark data into one folder for a closed network (kosov mirror --help)",
}


def report(error: KosovError) -> None:
    log.error("%s", error)


def _command(name: str) -> Callable:
    if name == "synth":
        from training.synth import synth

        return synth
    if name == "train":
        from training.train import train

        return train
    if name == "eval":
        from training.evaluate import evaluate

        return evaluate
    if name == "serve":
        from training.serve import serve

        return serve
    if name == "publish":
        from training.publish import publish

        return publish
    raise KeyError(name)


def apply_mirror(overrides: list[str]) -> None:
    """`mirror=FOLDER` (or KOSOV_MIRROR): point the Hugging Face libraries at a kosov mirror, offline, before any
    of them is imported (they read their cache settings once, at import)."""
    folder = next((o.partition("=")[2] for o in overrides if o.startswith("mirror=")), None)
    folder = os.environ.get("KOSOV_MIRROR") if folder is None else folder
    if folder not in (None, *MIRROR_OFF):  # mirror=null: the hub, even with KOSOV_MIRROR set
        from training.mirror_check import mirror_env, read_manifest

        read_manifest(folder)  # a clear error when the folder is not a mirror
        os.environ.update(mirror_env(folder))
        log.info("reading models and benchmark data from the mirror %s (offline)", folder)


def export_slurm_distributed() -> None:
    """Under Hydra's submitit launcher on SLURM, one task per GPU: give each the torch.distributed variables
    (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) that accelerate and the Trainer read."""
    if "SLURM_JOB_ID" not in os.environ or "RANK" in os.environ:
        return
    try:
        from submitit.helpers import TorchDistributedEnvironment

        env = TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    except (ImportError, RuntimeError):  # not a submitit job (e.g. srun kosov ... by hand): leave it alone
        return
    log.info("SLURM task %d of %d (master %s:%d)", env.rank, env.world_size, env.master_addr, env.master_port)


def objective_value(metrics: dict, key: str) -> float:
    """A metric for Hydra sweepers (Optuna minimises or maximises what the task returns)."""
    value: object = metrics
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KosovError(f"objective={key!r} is not in the run's metrics",
                             fix="use a key of metrics.json, e.g. eval_loss, last_train_loss, rewards.reward.last")
        value = value[part]
    if value is None:  # e.g. eval_loss of a run without an eval split (data.eval_ratio=0)
        raise KosovError(f"objective={key!r} has no value in this run's metrics (null)",
                         fix="give the run what the metric needs (eval_loss: data.eval_ratio > 0 or eval files), "
                             "or choose another objective, e.g. last_train_loss")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise KosovError(f"objective={key!r} is not a number in this run's metrics ({value!r})",
                         fix="choose a key of metrics.json that holds a number, e.g. eval_loss") from None
    if not math.isfinite(number):  # Optuna refuses it, and its sweeper's report of the failure fails again
        raise KosovError(f"the run diverged: {key} is {number}",
                         fix="lower method.learning_rate (or narrow the sweep's range for it), or raise "
                             "method.warmup_steps; an Optuna sweep counts this trial as failed "
                             "(hydra.sweeper.max_failure_rate)")
    return number


def _hydra_argv(overrides: list[str], command: str = "train") -> list[str]:
    """An explicit output_dir is also Hydra's run folder, so Hydra creates no second, empty one. kosov publish
    needs no folder of Hydra's (its default is RUN/release, written whole or not at all): Hydra gets '.'."""
    if command == "publish":
        if any(o.startswith("hydra.run.dir=") for o in overrides):
            return list(overrides)
        # next to the first override, among the others (argparse takes them as one run of words): not after --cfg job
        at = next((i + 1 for i, o in enumerate(overrides) if not o.startswith("-")
                   and (i == 0 or overrides[i - 1] not in FLAG_ARGUMENT)), len(overrides))
        return [*overrides[:at], "hydra.run.dir=.", *overrides[at:]]
    out: list[str] = []
    for item in overrides:
        out.append(item)  # next to its output_dir=, among the overrides: Hydra's flags (--cfg job) may follow them
        if item.startswith("output_dir="):  # a sweep's jobs go to output_dir/<job number> (see task)
            out += [f"hydra.{kind}.dir={item.partition('=')[2]}" for kind in ("run", "sweep")
                    if not any(o.startswith(f"hydra.{kind}.dir=") for o in overrides)]
    return out


def __getattr__(name: str) -> type[Exception]:
    """training.cli.TrialFailed, a subclass of Hydra's CompactHydraException (printed as one line, without the
    traceback), made on first use so that importing the CLI does not import Hydra. It lives here, under its own name,
    so that a launcher pickling a job's result with the standard pickle finds it."""
    if name != "TrialFailed":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from hydra.errors import CompactHydraException

    trial_failed = type("TrialFailed", (CompactHydraException,), {
        "__module__": "training.cli", "__qualname__": "TrialFailed",
        "__doc__": "A trial of an optimising sweep (Optuna), or a job the submitit launcher ran in a process of its "
                   "own, failed with a kosov error."})
    globals()["TrialFailed"] = trial_failed  # made once: later lookups find the module attribute
    return trial_failed


def _run_hydra(command: str, overrides: list[str]) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from training.config import validate
    from training.recipes import register_schema

    register_schema()
    status = {"code": 0}
    from training.cli import TrialFailed  # this module's (under `python -m training.cli` too): made on first use

    def task(cfg: DictConfig) -> float | None:
        if not logging.getLogger().handlers:  # a process of its own (a submitit job on SLURM): kosov's log here too
            setup_logging()
        in_job = "submitit" in HydraConfig.get().launcher._target_  # in the job's own process
        if in_job:
            exit_status_for_slurm()
        optimising = not HydraConfig.get().sweeper._target_.endswith("BasicSweeper")  # Optuna: needs a value
        try:
            config = validate(cfg)
            if optimising and not config.objective:
                raise KosovError("Hydra's Optuna sweeper optimises the value each run returns, but objective is null",
                                 fix="set objective= to a key of metrics.json, e.g. objective=eval_loss (with "
                                     "hydra.sweeper.direction=minimize)")
            if config.output_dir is not None and HydraConfig.get().mode.name == "MULTIRUN":
                config.output_dir = str(Path(config.output_dir) / str(HydraConfig.get().job.num))  # one per job
            if config.output_dir is None and command != "publish":
                if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # each process would get its own timestamp
                    raise KosovError("several processes would each pick their own timestamped run folder",
                                     fix="pass output_dir=DIR under accelerate launch / torchrun / SLURM")
                config.output_dir = HydraConfig.get().runtime.output_dir
            export_slurm_distributed()
            result = _command(command)(config)
            if config.objective:
                return objective_value(getattr(result, "metrics", {}), config.objective)
            return None
        except KosovError as e:
            from training.preemption import LeftToRankZero, StoppedBySignal

            if isinstance(e, LeftToRankZero):  # rank 0 requeues the job, or reports why it could not
                log.info("%s", e)
                return None
            sweeping = HydraConfig.get().mode.name == "MULTIRUN"
            if isinstance(e, StoppedBySignal) and sweeping and config.output_dir is not None:
                # what continues it is the sweep's command, with the sweep's folder, not the job's own
                job = HydraConfig.get().job.num
                e = StoppedBySignal(e.what, where=e.where, fix=sweep_resume(sweep_folder(config.output_dir, job)))
            report(e)
            code = STOPPED_EXIT if isinstance(e, StoppedBySignal) else 2  # a stop: run it again with resume=true
            status["code"] = code
            if in_job:
                job_failed(code)  # SLURM records the job as failed (submitit would exit 0 with its result)
            if HydraConfig.get().mode.name == "RUN":
                raise SystemExit(code) from None
            if isinstance(e, StoppedBySignal):  # a sweep ends with the job a signal stopped
                if in_job:  # the sweep's process ends the sweep (sweep_jobs.stopped_jobs_end_the_sweep)
                    raise TrialFailed(f"{STOPPED_JOB}{e}") from None
                # this process runs the sweep: it ends here (SystemExit: Hydra's run_job lets it by)
                sweep_stopped(e.fix or sweep_resume(None))
            if optimising:
                # An optimising sweeper (Optuna) needs a value: its failed trial, beyond max_failure_rate, ends
                # the sweep with this one line instead of a traceback from study.best_trial.
                raise TrialFailed(f"{FAILED_TRIAL}{e}") from None
            if in_job:
                # A job in a process of its own (SLURM): returning would tell the sweep's process it succeeded.
                raise TrialFailed(f"{FAILED_JOB}{e}") from None
            return None
        except Exception:  # a bug: Hydra's run_job keeps its traceback for the sweep's process
            if in_job:
                job_failed(1)
            raise

    main = hydra.main(config_path=str(recipes_dir()), config_name="config", version_base="1.3")(task)
    saved = sys.argv
    sys.argv = [f"kosov {command}", *_hydra_argv(overrides, command)]
    try:
        with optuna_failures_reported(status), job_failures_reported(status):
            main()
    except SystemExit:  # Hydra exits 1 after a failed trial; the kosov error above was reported already
        if not status["code"]:
            raise
    finally:
        sys.argv = saved
    return status["code"]


def usage() -> str:
    lines = [f"kosov {__version__}: adapt open LLMs to Korean", "", "usage: kosov <command> [overrides]", ""]
    lines += [f"  {name:<10} {text}" for name, text in COMMANDS.items()]
    lines += ["", "Recipes: " + str(recipes_dir()), "Example: kosov train experiment=smoke-sft peft.r=32"]
    return "\n".join(lines)


# Hydra's flags that leave the recipe as it is (a sweep; printing the composed config): kosov composes it first.
CHECKED_FLAGS = {"-m", "--multirun", "--cfg", "-c", "--resolve", "--package", "-p"}
FLAG_ARGUMENT = {"--cfg", "-c", "--package", "-p", "--config-dir", "-cd", "--config-path", "-cp", "--config-name",
                 "-cn", "--experimental-rerun"}  # flags followed by their value (--cfg job)


def _flags_and_values(overrides: list[str]) -> tuple[set[str], list[str]]:
    """Hydra's flags (without the values some take: --cfg job) and the key=value overrides."""
    flags, values, arg = set(), [], False
    for item in overrides:
        if arg:
            arg = False
        elif item.startswith("-"):
            flags.add(item.partition("=")[0])
            arg = item in FLAG_ARGUMENT
        else:
            values.append(item)
    return flags, values


PRINT_FLAGS = {"--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}


def output_dirs(values: list[str]) -> list[str]:
    """The output_dir= values on the command line, as Hydra reads them. A sweep over output_dir is refused: Hydra
    would take it as a sweep over its own run folder, and a sweep's jobs get one folder each already."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    found = []
    for item in (o for o in values if o.startswith("output_dir=")):
        try:
            override = OverridesParser.create().parse_override(item)
        except Exception:  # noqa: BLE001 - Hydra names what is wrong with it
            continue
        if override.is_sweep_override():
            raise KosovError(f"{item} sweeps over run folders, but a sweep's jobs get one each already: "
                             "output_dir/<job number>",
                             fix="give one output_dir (the jobs go to output_dir/0, output_dir/1, ...), or run each "
                                 "folder as a command of its own")
        if isinstance(value := override.value(), str) and "${" not in value:
            found.append(value)
    return found


def refuse_resume_without_folder(configs: list, values: list[str], multirun: bool) -> None:
    """resume=true without output_dir (or Hydra's hydra.run.dir / hydra.sweep.dir): the run, or the sweep, would go
    to a new timestamped folder and start from the first step, saying only that the folder held no run yet.
    Refused before Hydra creates that folder. A submitit job requeued by SLURM does not come here: it runs again in
    the folder it was submitted with."""
    own = "hydra.sweep.dir=" if multirun else "hydra.run.dir="
    if any(o.startswith(own) for o in values) or not any(c.resume and c.output_dir is None for c in configs):
        return
    from training.run_dir import resume_needs_folder

    raise resume_needs_folder(configs[0].name, sweep=multirun)


def refuse_secrets_for_submitit(values: list[str]) -> None:
    """Under Hydra's submitit launcher each job's overrides and composed recipe are pickled, in clear, into
    hydra.launcher.submitit_folder (output_dir/.submitit/<job>/*.pkl), which kosov cannot redact: a secret on the
    command line (a URL's credentials, a key-like query value, a secret-named key, an environment secret's value) is
    refused before anything is submitted."""
    from training.redaction import redact_text

    secret = [o for o in values if not o.startswith("hydra") and redact_text(o) != o]
    if not secret:
        return
    from training.recipes import launcher_target

    if "submitit" not in launcher_target(values):
        return
    shown = ", ".join(redact_text(o) for o in secret)
    raise KosovError(f"the submitit launcher would store {shown} in clear text in each job's pickles "
                     "(output_dir/.submitit/<job>/*_submitted.pkl), readable by anyone who can read the folder",
                     fix="keep secrets off the command line: give a teacher's or judge's key through the "
                         "environment (api_key_env=NAME, with NAME exported before you submit: SLURM jobs inherit "
                         "it), a URL without user:password@ or key-like query values, and HF_TOKEN / WANDB_API_KEY "
                         "as environment variables")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] == "--version":
        print(__version__)
        return 0
    command, overrides = args[0], args[1:]
    setup_logging()
    try:
        return _main(command, overrides)
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback (an overwrite under way put the earlier run back)
        hint = ": a run continues from its last checkpoint, if it saved one, with the same command and resume=true"
        log.error("kosov %s was interrupted (Ctrl-C) and stopped%s", command, hint if command == "train" else "")
        return 130


def _main(command: str, overrides: list[str]) -> int:
    if command not in COMMANDS:
        report(KosovError(f"unknown command '{command}'", fix=f"use one of: {', '.join(COMMANDS)}"))
        return 2
    if command == "convert":  # plain arguments: kosov convert kormo SRC DST [--overwrite]
        from training.convert import main as convert_main

        return convert_main(overrides)
    if command == "mirror":  # plain flags, not a recipe: it runs on a connected machine, before any recipe
        from training.mirror import main as mirror_main

        return mirror_main(overrides)
    try:
        from training.own_recipes import OWN_RECIPE_FLAGS, compose_own_recipes, own_search_path
        from training.recipes import check_override_keys

        own = own_search_path(overrides)
        check_override_keys([o for o in overrides if not o.startswith("-")], own_recipes_only=not own)
        apply_mirror(overrides)
        flags, values = _flags_and_values(overrides)
        if flags & {"-m", "--multirun"} and not flags & PRINT_FLAGS:  # before anything is submitted
            refuse_secrets_for_submitit(values)
        folders = output_dirs(values)
        multirun = bool(flags & {"-m", "--multirun"})
        if flags <= CHECKED_FLAGS and not own:  # kosov's own recipes: compose the run (each run of a sweep) here
            from training.recipes import compose, compose_sweep  # first, so a recipe mistake is a kosov error (exit 2)

            configs = compose_sweep([o for o in values if not o.startswith("hydra")]) if multirun else \
                [compose([o for o in values if not o.startswith("hydra")])]
            if command == "train" and not flags & PRINT_FLAGS:
                refuse_resume_without_folder(configs, values, multirun)
        elif flags <= CHECKED_FLAGS | OWN_RECIPE_FLAGS and command == "train" and not flags & PRINT_FLAGS:
            refuse_resume_without_folder(compose_own_recipes(overrides, multirun), values, multirun)  # user's recipes
        if command != "publish" and not flags & PRINT_FLAGS:  # Hydra creates its run folder (output_dir) first
            from training.run_dir import usable_folder

            for folder in folders:
                usable_folder(Path(folder))
        return _run_hydra(command, overrides)
    except KosovError as e:
        report(e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
