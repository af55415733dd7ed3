"""A command line that brings the user's own recipe folders (`--config-dir DIR`, `hydra.searchpath=[file://DIR]`,
`--config-name`, `--config-path`), composed before Hydra runs it, on the search path Hydra gives it.

    kosov train -cd my_recipes experiment=mine resume=true     # refused without output_dir, as with kosov's recipes

kosov composes a command on its own recipes before Hydra runs it (cli._main), so that what it checks first holds
before Hydra creates a run folder: resume=true without output_dir would start a new timestamped folder from step 0.
On the user's folders the same check needs the recipe as Hydra will compose it: kosov's recipe tree first, then the
user's folders (Hydra puts `--config-dir` and hydra.searchpath just before the typed schema), the same primary config.
"""

from __future__ import annotations

import logging
from pathlib import Path

from training.config import validate
from training.recipes import recipes_dir, register_schema, sweep_runs
from training.schema import KosovConfig

log = logging.getLogger(__name__)

# Hydra's flags that bring recipes of the user's (they take a value: --config-dir DIR)
OWN_RECIPE_FLAGS = {"--config-dir", "-cd", "--config-name", "-cn", "--config-path", "-cp"}


def own_search_path(overrides: list[str]) -> bool:
    """Whether the command line puts folders of the user's on Hydra's search path."""
    return any(o in ("--config-dir", "-cd") or o.startswith(("--config-dir=", "hydra.searchpath="))
               for o in overrides)


def compose_own_recipes(argv: list[str], multirun: bool) -> list[KosovConfig]:
    """The runs of `argv` (Hydra's flags and overrides, as `kosov <command>` takes them) composed on the search path
    Hydra gives the command; each run of a sweep (recipes.sweep_runs). A run that does not compose here is left out:
    Hydra reports what is wrong with it when it composes it (or resolves it on the job's node: an ${oc.env:...} that
    this machine does not set)."""
    from hydra import compose as hydra_compose
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_automatic_config_search_path, get_args_parser
    from hydra.core.config_search_path import SearchPathQuery
    from hydra import version
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    args = get_args_parser().parse_args(argv)
    search_path = create_automatic_config_search_path(None, "training.cli", args.config_path or str(recipes_dir()))
    if args.config_dir is not None:  # where Hydra's own _run_hydra puts it
        search_path.prepend(provider="command-line", path=f"file://{Path(args.config_dir).resolve()}",
                            anchor=SearchPathQuery(provider="schema"))
    searched = [o for o in args.overrides if o.startswith("hydra.searchpath=")]
    plain = [o for o in args.overrides if not o.startswith("hydra")]
    runs = sweep_runs(plain) if multirun else [plain]
    register_schema()
    version.setbase("1.3")  # as cli's hydra.main
    backup = get_gh_backup()
    composed = []
    try:
        Hydra.create_main_hydra2(task_name="cli", config_search_path=search_path)
        for run in runs:
            try:
                composed.append(validate(hydra_compose(config_name=args.config_name or "config",
                                                       overrides=[*run, *searched])))
            except Exception as e:  # noqa: BLE001 - Hydra, or the job, reports it
                log.debug("left to Hydra: %s does not compose here (%s)", " ".join(run), e)
    finally:
        restore_gh_from_backup(backup)
    return composed
