"""The recipe tree: find it (source checkout or installed package), check overrides against it, compose.

`kosov <command>` composes through `@hydra.main` (cli.py); tests and chained stages use `compose()`.
Both register the typed schema first, so every key exists and is type-checked while composing.
"""

from __future__ import annotations

import logging
import os
import re
import typing
from pathlib import Path
from typing import Any

from training.config import field_names, schema_at, unknown_key_error, validate
from training.schema import KosovConfig
from training.errors import KosovError

log = logging.getLogger(__name__)

SCHEMA_NAME = "kosov_schema"


def recipes_dir() -> Path:
    """The recipe tree: inside the installed package (wheel), else at the top of the source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "recipes", here.parent / "recipes"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise KosovError(f"the kosov recipe tree was not found next to {here}", fix="reinstall kosov")


def register_schema() -> None:
    """Make the schema the first default of recipes/config.yaml: every key exists (and can be overridden
    without '+'), and Hydra type-checks recipe files and overrides while composing."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=KosovConfig)


def compose(overrides: list[str] | tuple[str, ...] = ()) -> KosovConfig:
    """Compose recipes/config.yaml with overrides, as `kosov <command>` does, and validate it."""
    from hydra import compose as hydra_compose
    from hydra.errors import HydraException, OverrideParseException

    check_override_keys(list(overrides))
    register_schema()
    with _recipe_context():
        try:
            composed = hydra_compose(config_name="config", overrides=list(overrides))
        except Exception as e:
            # A key inside a section the recipe leaves null (peft.quantization without peft=qlora) fails in
            # OmegaConf with a bare AssertionError ("Unexpected type for root: NoneType"): name the section.
            null_section = null_section_error(list(overrides), hydra_compose)
            if null_section is not None:
                raise null_section from None
            if not isinstance(e, (HydraException, ValueError)):  # ValueError: Hydra's for e.g. a group set to null
                raise
            value_error = _value_error(e.__cause__)
            if value_error is not None:
                raise value_error from None
            cause = f" ({e.__cause__})" if e.__cause__ else ""
            fix = ("write the override as key=value in Hydra's override grammar; quote a value with spaces or "
                   "other special characters: 'name=\"my run\"', and each item of a list holding = or spaces: "
                   "'method.grpo.sft_stage=[\"experiment=smoke-sft\"]'" if isinstance(e, OverrideParseException) else
                   "check the value and its type; a list goes in brackets: data.train_files=[a.jsonl]")
            what = f"the recipe does not compose: {e}{cause}"
            if isinstance(e, OverrideParseException) and e.override:  # Hydra's message alone names no override
                from training.redaction import redact_text

                override, message = (redact_text(text) for text in (e.override, f"{e}{cause}"))
                what = f"the override '{override}' does not parse: {message}"
            raise KosovError(what, fix=fix) from None
    return validate(composed)


def launcher_target(overrides: list[str]) -> str:
    """The _target_ of the Hydra launcher a command line picks (hydra/launcher=..., or an experiment recipe's
    defaults: experiment=qwen3-8b-ko-sft-slurm), '' where it cannot be told (the sweep's values are left out)."""
    from hydra import compose as hydra_compose

    picked = [o for o in overrides if o.startswith(("experiment=", "hydra/", "hydra.launcher."))]
    register_schema()
    try:
        with _recipe_context():
            composed = hydra_compose(config_name="config", overrides=picked, return_hydra_config=True)
        return str(composed.hydra.launcher.get("_target_") or "")
    except Exception:  # noqa: BLE001 - e.g. a swept experiment: what the command line says
        return next((o.partition("=")[2] for o in reversed(overrides) if o.startswith("hydra/launcher=")), "")


TYPE_WORDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def _value_error(cause: BaseException | None) -> KosovError | None:
    """An override OmegaConf refused, named by its key: a key inside a dict value the schema does not have
    (peft.quantization={load_in_4bit: true}), or a value of another type than the key takes (peft.r=abc)."""
    from omegaconf.errors import ConfigKeyError, ValidationError

    key = getattr(cause, "full_key", None)
    if not key:
        return None
    if isinstance(cause, ConfigKeyError):
        return unknown_key_error(key)
    if not isinstance(cause, ValidationError):
        return None
    parts = key.split(".")
    cls = schema_at(parts[:-1])
    hint = typing.get_type_hints(cls).get(parts[-1]) if cls else None
    kinds = [h for h in (hint, *typing.get_args(hint)) if h is not type(None)]
    if _takes_list(key):
        wants = f"a list, in brackets: {key}=[a, b]"
    else:
        wants = next((TYPE_WORDS[k] for k in kinds if k in TYPE_WORDS), "a value of its type")
    return KosovError(f"recipe key '{key}': {str(getattr(cause, 'msg', cause)).splitlines()[0]}",
                      fix=f"{key} takes {wants}")


def _recipe_context() -> Any:
    """Hydra initialised on the recipe tree; inside a running `kosov` command it already is."""
    import contextlib

    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return contextlib.nullcontext()
    return initialize_config_dir(config_dir=str(recipes_dir()), version_base="1.3")


def sweep_runs(overrides: list[str], limit: int = 32) -> list[list[str]]:
    """The runs of a sweep (`kosov <command> -m`), to compose before its first job: every combination of the
    values of comma lists and choice(...) (peft.r=4,8 peft=lora,dora: four runs). Above `limit` combinations, each
    value once (the others at their first value), the swept keys taking turns, and never more than `limit` runs: a
    150-value seed sweep composes 32 of them here, and each job checks its own. Hydra's own settings
    (hydra.sweeper.*, hydra/launcher=...) are left out, and so is a value swept over range(...) or interval(...)
    (the recipe's value stands in); a config group swept by such a function (experiment=glob(*)) leaves the whole
    sweep to Hydra: no runs."""
    import itertools
    import math

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException:
        return [list(overrides)]  # composing says what does not parse
    groups = {p.name for p in recipes_dir().iterdir() if p.is_dir()}
    choices: list[list[str]] = []
    for text, override in zip(overrides, parsed):
        if override.is_hydra_override():
            continue
        if not override.is_sweep_override():
            choices.append([text])
        elif override.value_type in (ValueType.SIMPLE_CHOICE_SWEEP, ValueType.CHOICE_SWEEP):
            choices.append([f"{override.get_key_element()}={v}" for v in override.sweep_string_iterator()])
        elif override.key_or_group in groups:
            return []
    runs = list(itertools.islice(itertools.product(*choices), limit + 1))
    if len(runs) <= limit:
        return [list(run) for run in runs]
    firsts = [values[0] for values in choices]
    one_value_each = itertools.chain([firsts], (  # value j of each swept key in turn, then value j + 1
        [*firsts[:i], values[j], *firsts[i + 1:]] for j in range(1, max(map(len, choices)))
        for i, values in enumerate(choices) if j < len(values)))
    picked = list(itertools.islice(one_value_each, limit))
    distinct = 1 + sum(len(values) - 1 for values in choices)  # the run of first values, then one per other value
    log.info("the sweep has %d runs: checking %d of them here (%s); its jobs check the rest",
             math.prod(map(len, choices)), len(picked),
             "each value once" if len(picked) == distinct else f"{len(picked) - 1} of its {distinct - 1} other values")
    return picked


_MISSING_ENV = re.compile(r"Environment variable '(.+)' not found")


def _missing_env_var(error: BaseException) -> str | None:
    """The environment variable an ${oc.env:NAME} in the recipe read and this machine does not set, when that is
    why `error` was raised (OmegaConf's KeyError, somewhere in its chain of causes); else None."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, KeyError) and cause.args and isinstance(cause.args[0], str):
            found = _MISSING_ENV.fullmatch(cause.args[0])
            if found and found[1] not in os.environ:
                return found[1]
        cause = cause.__cause__ or cause.__context__
    return None


def compose_sweep(overrides: list[str]) -> list[KosovConfig]:
    """Compose and validate every run of a sweep (see sweep_runs): a mistake in any of its values is a KosovError
    naming the run, before the first job starts. A run that reads an environment variable this machine does not set
    (output_dir=${oc.env:SLURM_SUBMIT_DIR}/runs) is left to its job: the compute node it runs on may set it.
    Returns the runs composed here."""
    left_to_jobs: dict[str, int] = {}  # variable -> runs not checked here
    composed: list[KosovConfig] = []
    with _recipe_context():
        for run in sweep_runs(overrides):
            try:
                composed.append(compose(run))
            except KosovError as e:
                missing = _missing_env_var(e)
                if missing is not None:
                    left_to_jobs[missing] = left_to_jobs.get(missing, 0) + 1
                    continue
                swept = " ".join(o for o in run if o not in overrides)
                where = ", ".join(filter(None, [f"the sweep's run {swept}" if swept else None, e.where]))
                raise KosovError(e.what, where=where or None, fix=e.fix) from None
    for name, runs in left_to_jobs.items():
        log.info("%d run(s) of the sweep read the environment variable %s, which this machine does not set: their "
                 "jobs check them where they run", runs, name)
    return composed


# Sections the schema makes Optional and recipes leave null unless a config group choice fills them in.
_NULL_SECTION_FIXES = {
    "peft.quantization": "4-bit quantization is QLoRA's: add peft=qlora (its quantization section takes {key})",
    "method.grpo": "method.grpo is GRPO's section, not SFT's: use a GRPO recipe (e.g. experiment=smoke-grpo) "
                   "or add method=grpo",
    "method.sft": "method.sft is SFT's section, not GRPO's: use an SFT recipe (e.g. experiment=smoke-sft) "
                  "or add method=sft",
}


def _value_override_key(override: str, groups: set[str]) -> str | None:
    """The dotted key that a value override sets (peft.r=8 -> 'peft.r'; +/++ too), else None."""
    key, sep, _ = override.partition("=")
    key = key.lstrip("+")
    if not sep or "." not in key or key.startswith(("hydra.", "~")) or "/" in key or "@" in key or key in groups:
        return None
    return key


def null_section_error(overrides: list[str], hydra_compose: Any) -> KosovError | None:
    """The error for an override of a key whose section (a parent) is null in the recipe composed without the
    dotted key overrides, or None when no override does that. Call it inside Hydra's initialised context."""
    groups = {p.name for p in recipes_dir().iterdir() if p.is_dir()}
    keys = [_value_override_key(o, groups) for o in overrides]
    try:
        base = hydra_compose(config_name="config", overrides=[o for o, k in zip(overrides, keys) if k is None])
    except Exception:  # noqa: BLE001 - the recipe fails without them too: not this mistake
        return None
    from omegaconf import OmegaConf

    absent = object()
    for override, key in zip(overrides, keys):
        if key is None:
            continue
        parts = key.split(".")
        whole = override.partition("=")[2].lstrip().startswith("{")  # peft.quantization={...}: the section itself
        for depth in range(1, len(parts) + whole):
            section = ".".join(parts[:depth])
            value = OmegaConf.select(base, section, default=absent, throw_on_resolution_failure=False)
            if value is absent:
                break  # a misspelt or new key: check_override_keys and Hydra report those
            if value is None:
                group = parts[0] if parts[0] in groups else None
                fix = _NULL_SECTION_FIXES.get(section) or (
                    f"choose a recipe that sets `{section}` through its config group "
                    f"({group}=...: {', '.join(recipe_options(group))})" if group
                    else f"set `{section}` in the recipe before overriding its keys")
                if section == key:  # Hydra cannot merge a dict into a null section: name its keys instead
                    names = ", ".join(field_names(schema_at(parts)) if schema_at(parts) else [])
                    return KosovError(f"cannot set '{key}' as a whole: `{section}` is null in this recipe (the "
                                      "section is absent), so there is nothing to merge it into",
                                      fix=fix.format(key=f"{key}.KEY=VALUE for {names or 'its keys'}"))
                return KosovError(f"cannot set '{key}': `{section}` is null in this recipe (the section is absent), "
                                  "so it has no keys to override", fix=fix.format(key=key))
    return None


def recipe_options(group: str) -> list[str]:
    """The recipe files of a group (recursive), as Hydra names them: experiment/smoke-sft -> 'smoke-sft'."""
    root = recipes_dir() / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def _check_group_choice(group: str, value: str) -> None:
    if re.match(r"^\s*\w+\(", value):  # a sweep function (choice(...), glob(...)): Hydra expands it
        return
    names = [v.strip() for v in value.strip().strip("[]").split(",") if v.strip()]
    options = recipe_options(group)
    for name in names:
        if name not in options and name != "null":
            raise KosovError(f"{group}={name!r}: there is no recipe {group}/{name}.yaml",
                             fix=f"use one of: {', '.join(options)}")


def _takes_list(key: str) -> bool:
    """Whether the schema types this key as a list (data.train_files: list[str])."""
    parts = key.lstrip("+").split(".")
    cls = schema_at(parts[:-1])
    hint = typing.get_type_hints(cls).get(parts[-1]) if cls else None
    return any(typing.get_origin(h) is list for h in (hint, *typing.get_args(hint)))


def _check_unquoted_letters(override: str, parser: Any) -> None:
    """Hydra's override grammar takes only ASCII letters outside quotes: output_dir=결과/실행1 stops its parser at
    '결' (LexerNoViableAltException). Such a value must be quoted: output_dir="결과/실행1". Only an override that
    Hydra's own parser refuses gets this hint (name="say \\"안녕\\"" is a valid quoted value)."""
    from hydra.errors import HydraException

    key, _, value = override.partition("=")
    if value.isascii():
        return
    try:
        parser.parse_override(override)
        return
    except HydraException:
        pass
    if re.sub(r"'[^']*'|\"[^\"]*\"|\$\{[^}]*\}", "", value).isascii():
        return  # not the letters: composing says what does not parse
    if re.search(r"['\"{}]", value):  # quotes or a dict already: show the rule on a plain example
        example = 'output_dir="결과/실행1"'
    else:  # each bare word that has non-ASCII letters in double quotes: [데이터/학습.jsonl] -> ["데이터/학습.jsonl"]
        quoted = re.sub(r"[^\[\](),]+", lambda m: m[0] if m[0].isascii() else f'"{m[0].strip()}"', value)
        example = f"{key}=[{quoted}]" if _takes_list(key) and not value.startswith("[") else f"{key}={quoted}"
    raise KosovError(f"{key}={value}: Hydra reads letters outside quotes in ASCII only, so a value with Korean "
                     "(or other non-ASCII) letters must be quoted",
                     fix=f"put the value (each item of a list) in double quotes, and the whole override in single "
                         f"quotes for the shell: '{example}'")


def check_override_keys(overrides: list[str], own_recipes_only: bool = True) -> None:
    """Fail on overrides naming a key the schema does not have, or a recipe file that does not exist
    (before Hydra composes, so the error lists what is allowed). With the user's own recipe folders on Hydra's
    search path (own_recipes_only=False), recipe names are left to Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    groups = {p.name for p in recipes_dir().iterdir() if p.is_dir()}
    parser = OverridesParser.create()
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep:
            _check_unquoted_letters(override, parser)
        if not sep or key.startswith(("hydra.", "hydra/", "+", "~")):
            continue  # Hydra's own keys and explicit additions / deletions are Hydra's business
        if key in groups or ("." not in key and not own_recipes_only):  # the user's folders may add groups
            if own_recipes_only:
                _check_group_choice(key, value)
            continue
        if "." not in key:
            if key not in field_names(KosovConfig):
                raise unknown_key_error(key)
            continue
        parts = key.split(".")
        cls = schema_at(parts[:-1])
        if cls is not None and parts[-1] not in field_names(cls):
            raise unknown_key_error(key)
