"""LoRA adapters: what PEFT trains (the recipe's targets, checked against the model), and the adapters it makes —
found in a run folder, checked to belong to the base they are loaded on, and used with the prompt settings their
run trained with."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from training.errors import KosovError
from training.schema import ModelConfig, PeftConfig

log = logging.getLogger(__name__)


def linear_module_names(model: Any) -> set[str]:
    import torch

    names = set()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__.startswith("Linear"):
            names.add(name.rsplit(".", 1)[-1])
    return names

def check_target_parameters(pcfg: PeftConfig, parameters: list[str], model: Any) -> None:
    """LoRA on bare parameters (PEFT's ParamWrapper, for fused MoE experts): they must exist, and PEFT supports
    neither dropout nor DoRA there."""
    names = [n for n, _ in model.named_parameters()]
    missing = [t for t in parameters if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise KosovError(f"peft.target_parameters names {missing}, which this model does not have",
                         fix="use parameter names (suffixes) of the model, e.g. mlp.experts.gate_up_proj")
    if pcfg.dropout:
        raise KosovError(f"peft.target_parameters with peft.dropout={pcfg.dropout}: PEFT applies LoRA on parameters "
                         "as a weight update, where dropout is not possible", fix="set peft.dropout=0")
    if pcfg.method == "dora":
        raise KosovError("peft=dora with peft.target_parameters: PEFT has no DoRA for parameters",
                         fix="use peft=lora, or drop peft.target_parameters")

def fused_experts(model: Any) -> list[str]:
    """Names (after the layer index) of 3-D parameters: the fused MoE experts of transformers 5."""
    return sorted({n.split(".layers.")[-1].split(".", 1)[-1] for n, p in model.named_parameters()
                   if len(getattr(p, "ds_shape", p.shape)) == 3})  # ds_shape: ZeRO-3 holds a 1-D shard

def lora_config(pcfg: PeftConfig, model: Any, commit: str | None = None):
    """The PEFT LoraConfig for lora / dora / qlora, None for a full fine-tune. Unknown targets fail clearly.
    `commit`: the commit of the hub base loaded (training.base_commit), saved as the adapter's `revision`, which PEFT
    loads the base at (AutoPeftModelForCausalLM; PEFT's default, null, is main, wherever it has moved since)."""
    if pcfg.method == "none":
        return None
    from peft import LoraConfig

    targets = pcfg.target_modules
    fused = fused_experts(model)
    if targets == "all-linear" and fused:  # with peft.target_parameters too: all-linear still takes the router
        raise KosovError(
            f"peft.target_modules=all-linear on a model with fused expert weights ({', '.join(fused)}): PEFT would "
            "also put LoRA on the router (mlp.gate) and on the fused experts, doubling the rank of those that "
            "peft.target_parameters names, and it refuses peft.dropout > 0 there",
            fix="name the targets: peft.target_modules=[q_proj,k_proj,v_proj,o_proj] "
                f"peft.target_parameters=[{','.join(fused)}] peft.dropout=0")
    if targets != "all-linear":
        targets = list(targets)
        available = linear_module_names(model)
        missing = [t for t in targets if t not in available]
        if missing:
            raise KosovError(f"peft.target_modules names {missing}, which this model does not have",
                             fix=f"use 'all-linear' or names from: {', '.join(sorted(available))}")
    parameters = list(pcfg.target_parameters)
    if parameters:
        check_target_parameters(pcfg, parameters, model)
    saved = list(pcfg.modules_to_save)
    modules = [name for name, _ in model.named_modules()]
    unknown = [t for t in saved if not any(n == t or n.endswith("." + t) for n in modules)]
    if unknown:  # PEFT would train nothing extra, silently
        raise KosovError(f"peft.modules_to_save names {unknown}, which this model does not have",
                         fix="use module names (suffixes) of the model, e.g. embed_tokens, lm_head")
    # a tied model (Qwen3 up to 4B) keeps embed_tokens and lm_head one matrix when either is trained in full
    # (named by their last part: model.embed_tokens is embed_tokens)
    tied = bool(getattr(model.config, "tie_word_embeddings", False)) and \
        bool({"embed_tokens", "lm_head"} & {name.rsplit(".", 1)[-1] for name in saved})
    return LoraConfig(
        target_parameters=parameters or None,
        r=pcfg.r,
        lora_alpha=pcfg.alpha,
        lora_dropout=pcfg.dropout,
        target_modules=targets,
        modules_to_save=saved or None,
        ensure_weight_tying=tied,
        use_rslora=pcfg.use_rslora,
        use_dora=pcfg.method == "dora",
        task_type="CAUSAL_LM",
        revision=commit,
    )


def upcast_trainable(trainer: Any, precision: str) -> list[str]:
    """The weights a PEFT model trains in full (peft.modules_to_save's copies of embed_tokens, lm_head) in fp32 under
    fp16 / bf16 autocast (`precision`), as PEFT keeps LoRA's: copied from a half-precision base they stayed fp16 or
    bf16, which fp16's loss scaling refuses at the first optimizer step ("Attempting to unscale FP16 gradients")
    and bf16 trains with no fp32 master copy. Left alone: a full fine-tune, QLoRA (TRL trains its adapter in bf16,
    as the QLoRA paper does), DeepSpeed and FSDP (they keep fp32 master weights themselves), and no autocast (an fp32
    copy beside half-precision weights would not compute). Returns the names of the weights upcast."""
    import torch
    from peft import PeftModel

    model = trainer.model
    if precision not in ("fp16", "bf16") or not isinstance(model, PeftModel) or \
            getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False) or \
            getattr(trainer, "is_deepspeed_enabled", False) or getattr(trainer, "is_fsdp_enabled", False):
        return []
    upcast = []
    for name, param in model.named_parameters():  # a tied pair is one parameter: it stays one
        if param.requires_grad and param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.float()
            upcast.append(name)
    if upcast:
        log.info("training %d weights in fp32 under %s autocast (peft.modules_to_save): %s", len(upcast), precision,
                 ", ".join(upcast[:4]) + (", ..." if len(upcast) > 4 else ""))
    return upcast


WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")  # PEFT's two formats (.bin: safe_serialization=False)


def _elsewhere(folder: Path) -> str:
    """Where else a whole copy of a run's adapter is: its last checkpoint, when the run kept one (named if found)."""
    from training.run_dir import last_checkpoint

    checkpoints = run_of(folder) / "checkpoints"
    last = last_checkpoint(checkpoints) if checkpoints.is_dir() else None
    if last is not None and last.resolve() != folder.resolve() and any((last / w).is_file() for w in WEIGHTS):
        return f"give the run's last checkpoint instead ({last}, which holds its adapter at step " \
               f"{last.name.rsplit('-', 1)[-1]})"
    return "give the adapter of the run's last checkpoint instead (<run>/checkpoints/checkpoint-N/)"


def check_adapter_files(folder: Path) -> None:
    """A whole adapter: a readable adapter_config.json, and weights whose header is whole (read, not the tensors: a
    copy cut short fails here, before any model loads, not after the base was scored with a bare safetensors or
    hub error)."""
    fix = f"copy the adapter folder again from where it was trained, or {_elsewhere(folder)}"
    config = folder / "adapter_config.json"
    try:
        settings = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: empty, cut short, not UTF-8
        raise KosovError(f"the adapter's {config.name} is not readable JSON ({e}): the copy is damaged or cut short",
                         where=str(config), fix=fix) from None
    if not isinstance(settings, dict):
        raise KosovError(f"the adapter's {config.name} holds no settings (a JSON object)", where=str(config), fix=fix)
    found = [folder / w for w in WEIGHTS if (folder / w).is_file()]
    if not found:
        raise KosovError(f"this adapter folder has no weights (neither {' nor '.join(WEIGHTS)}): it is an "
                         "incomplete copy, or its run stopped before it saved them", where=str(folder), fix=fix)
    weights = found[0]
    try:
        if weights.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(weights), framework="pt") as f:  # the header, checked against the file's size
                tensors = len(list(f.keys()))
        else:  # torch.save's zip archive: its directory, at the end of the file, is lost when it is cut short
            import zipfile

            with zipfile.ZipFile(weights) as archive:
                tensors = len(archive.namelist())
    except Exception as e:  # noqa: BLE001 - safetensors' and zipfile's errors name no file and no fix
        raise KosovError(f"the adapter's weights {weights.name} are damaged or cut short ({type(e).__name__}: {e})",
                         where=str(weights), fix=fix) from None
    if not tensors:
        raise KosovError(f"the adapter's weights {weights.name} hold no tensors", where=str(weights), fix=fix)


def adapter_dir(path: str | Path) -> Path:
    """An adapter folder, given it or a run folder that holds one in adapter/, checked whole (check_adapter_files)."""
    path = Path(path).expanduser()
    for candidate in (path, path / "adapter"):
        if (candidate / "adapter_config.json").is_file():
            check_adapter_files(candidate)
            return candidate
    raise KosovError(f"no LoRA adapter at {path} (no adapter_config.json there or in {path / 'adapter'})",
                     fix="give the path of an adapter folder or of the kosov run folder holding it (adapter/)")

def _template_text(path: str | Path | None) -> str | None:
    path = Path(path).expanduser() if path else None
    return path.read_text(encoding="utf-8") if path is not None and path.is_file() else None

def run_of(adapter: Path) -> Path:
    """The run folder that wrote an adapter, where kosov writes them: run/adapter (a chained run's SFT stage:
    run/sft/adapter, of the run run/sft), run/checkpoints/checkpoint-N; else the folder holding it. Never a folder
    further up: that is another run (the GRPO run holding an SFT stage whose files are gone), not this one."""
    return adapter.parent.parent if adapter.parent.name == "checkpoints" else adapter.parent


def trained_model(adapter: Path) -> tuple[Path | None, dict[str, Any] | None]:
    """(the kosov run folder of `adapter`, the model settings it trained with); None for a bare adapter folder."""
    run = run_of(adapter) if (run_of(adapter) / "config.yaml").is_file() else None
    trained = (yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}).get("model") if run else None
    return run, trained if isinstance(trained, dict) else None


def adapter_model_config(mcfg: ModelConfig, adapter: Path) -> ModelConfig:
    """The model settings to serve or evaluate `adapter` with. An adapter of a kosov run answers in the prompt format
    it was trained with: its run's model.chat_template and end_of_turn_token, where this recipe sets none; one this
    recipe sets differently wins, with a warning naming both."""
    run, trained = trained_model(adapter)
    if trained is None:  # a bare adapter folder: nothing recorded to follow
        return mcfg
    changes: dict[str, Any] = {}
    template = trained.get("chat_template")
    if template:  # the copy saved with the adapter is found wherever the run was trained
        saved = adapter / "chat_template.jinja"
        template = str(saved) if saved.is_file() else template
        if _template_text(template) is None:
            raise KosovError(f"the run {run} was trained with model.chat_template={trained['chat_template']!r}, "
                             "which is not a file here, and its adapter holds no chat_template.jinja",
                             fix="set model.chat_template=<the template it was trained with>")
    if mcfg.chat_template is None and template:
        changes["chat_template"] = template
    elif _template_text(mcfg.chat_template) != _template_text(template):
        log.warning("the adapter of %s was trained with model.chat_template=%s; this recipe's %s is used instead",
                    run, trained.get("chat_template") or "(the tokenizer's own)",
                    mcfg.chat_template or "(the tokenizer's own)")
    end = trained.get("end_of_turn_token")
    if mcfg.end_of_turn_token is None and end:
        changes["end_of_turn_token"] = end
    elif mcfg.end_of_turn_token != end:
        log.warning("the adapter of %s was trained with model.end_of_turn_token=%s; this recipe's %s is used "
                    "instead", run, end or "(the tokenizer's eos)", mcfg.end_of_turn_token)
    if changes:
        log.info("using the settings the adapter was trained with (%s): %s", run / "config.yaml", changes)
    return replace(mcfg, **changes)

def trained_thinking(adapter: Path) -> bool | None:
    """enable_thinking for a new turn, as the adapter's kosov run trained its answers: "on" thinks; "off" answers
    after an empty think block, and so does "auto" when no training row carried thinking. None (the template's own
    default): "auto" on data with thinking in some rows (both modes trained), or nothing recorded."""
    run, trained = trained_model(adapter)
    mode = (trained or {}).get("thinking")
    if mode != "auto":
        return None if mode is None else mode == "on"
    saved = run / "provenance.json"
    rows = (json.loads(saved.read_text(encoding="utf-8")).get("data") or {}).get("thinking_rows") \
        if saved.is_file() else None
    return False if rows == 0 else None


def _same_base(trained_on: Any, source: str) -> bool | None:
    """Whether the base PEFT recorded for an adapter (base_model_name_or_path) is `source`: a local folder by where it
    resolves (base, ./base and /work/base are one folder), a hub id by name. None when it cannot be told: a relative
    path (older kosov saved model.name_or_path as given) that resolves to `source` from here names a folder relative
    to where the adapter was trained, which nothing recorded."""
    if not isinstance(trained_on, str) or not trained_on:
        return False
    if not Path(source).is_dir():  # a hub id
        return trained_on == source
    saved = Path(trained_on).expanduser()
    if saved.resolve() != Path(source).resolve():
        return False
    return True if saved.is_absolute() else None


class Ask:
    """The `commit` of a caller that did not resolve one: check_adapter_revision asks (hub_commit)."""

    def __repr__(self) -> str:
        return "ASK"


ASK = Ask()  # a resolved commit may be None (nothing could tell it): asking again would not tell it either


def check_adapter_base(adapter: Path, source: str, name_or_path: str, revision: str | None,
                       commit: str | None | Ask = ASK) -> None:
    """An adapter only means something on the base it was trained on: refuse another one before loading, or another
    revision of it (`revision`, the model.revision loaded now; `commit`, the commit it names as the caller resolved
    it, None where nothing could tell; ASK: resolved by check_adapter_revision) than it was trained on."""
    config = adapter / "adapter_config.json"
    trained_on = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
    same = _same_base(trained_on, source)
    if same is None:
        here = Path(source).resolve()
        raise KosovError(f"the adapter {adapter} names its base by the relative path {trained_on!r} (older kosov "
                         "saved model.name_or_path as given), relative to the folder it was trained from, which was "
                         f"not recorded: from here it is {here}, which may be another model", where=str(config),
                         fix=f"if {here} is the base it was trained on, write its full path into {config}: "
                             f'"base_model_name_or_path": "{here}"')
    if not same:
        _refuse_other_base(adapter, config, trained_on, source, name_or_path)
    from training.base_commit import check_adapter_revision

    check_adapter_revision(adapter, source, revision, commit)


def _refuse_other_base(adapter: Path, config: Path, trained_on: Any, source: str, name_or_path: str) -> None:
    """The error for an adapter trained on another base than `source`, with the fix that fits how it differs."""
    saved = Path(str(trained_on)).expanduser()
    run_config = adapter.parent / "config.yaml"  # the run's own name for its base (tiny-ko, not its cache path)
    named = (yaml.safe_load(run_config.read_text(encoding="utf-8")).get("model", {}).get("name_or_path")
             if run_config.is_file() else None) or trained_on
    if saved.is_absolute() and not saved.exists() and Path(source).is_dir() and named != "tiny-ko":
        # moved, or copied over (a tiny-ko build that is gone is another tiny-ko: its weights are not these)
        here = Path(source).resolve()
        raise KosovError(f"the adapter {adapter} was trained on the folder {trained_on}, which is not on this machine "
                         f"(moved, or the adapter was copied from another machine); this recipe loads {here}",
                         where=str(config), fix=f"if {here} is the base it was trained on, write its full path into "
                                                f'{config}: "base_model_name_or_path": "{here}"')
    if named != "tiny-ko" and saved.is_absolute():  # a folder: where it was loaded
        named = trained_on
    raise KosovError(f"the adapter {adapter} was trained on {trained_on!r}, but this recipe loads "
                     f"{name_or_path!r} ({source})",
                     fix=(f"set model.name_or_path={named} (as its run did)" if named != name_or_path else
                          f"load the base with the model settings of its run ({run_config})"
                          + ("; if they are these, train the adapter again: tiny-ko is built anew when kosov's "
                             "tiny_ko.py changes" if named == "tiny-ko" else ""))
                     + ", or use an adapter trained on this base")


def load_adapter(model: Any, adapter: Path, source: str, name_or_path: str, revision: str | None,
                 commit: str | None = None):
    """Wrap the base in a trainable PeftModel from `adapter`, after checking it is whole (an SFT stage's adapter
    comes here without adapter_dir) and was trained on this base and revision. `commit`: the base commit loaded
    (base_commit), which the continued adapter's adapter_config.json names when it is saved (as lora_config's)."""
    from peft import PeftModel

    check_adapter_files(adapter)
    check_adapter_base(adapter, source, name_or_path, revision, commit)
    log.info("continuing training of the adapter %s", adapter)
    peft_model = PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    if commit is not None:
        peft_model.peft_config["default"].revision = commit
    return peft_model


def continued_settings(adapter: Path, pcfg: PeftConfig) -> dict[str, Any]:
    """The LoRA settings of an adapter a run continues (method.init_adapter, an SFT stage's), which are the ones it
    trains with: a continued adapter keeps its shape. A warning names each of the recipe's peft settings that it
    does not apply (peft=dora, peft.r=32 on an r=8 LoRA adapter trained on as r=8 LoRA)."""
    saved = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    own = {"r": saved.get("r"), "alpha": saved.get("lora_alpha"), "dropout": saved.get("lora_dropout"),
           "dora": bool(saved.get("use_dora")), "use_rslora": bool(saved.get("use_rslora")),
           "modules_to_save": sorted(saved.get("modules_to_save") or []),
           "target_modules": sorted(saved["target_modules"]) if isinstance(saved.get("target_modules"), list)
           else saved.get("target_modules")}
    asked = {"r": pcfg.r, "alpha": pcfg.alpha, "dropout": pcfg.dropout, "dora": pcfg.method == "dora",
             "use_rslora": pcfg.use_rslora, "modules_to_save": sorted(pcfg.modules_to_save)}
    if pcfg.target_modules != "all-linear":  # PEFT saves all-linear as the module names it found
        asked["target_modules"] = sorted(pcfg.target_modules)
    differ = [key for key, value in asked.items() if own[key] != value]
    if differ:
        recipe = ", ".join("peft.method=dora" if k == "dora" and asked[k] else f"peft.{k}={asked[k]}" for k in differ)
        kept = ", ".join(f"{k}={own[k]}" for k in differ)
        log.warning("the adapter %s is continued with its own settings (%s): the recipe's %s do not apply, as a "
                    "continued adapter keeps its shape (train a new adapter for other settings)", adapter, kept, recipe)
    return own
