"""A chained run's SFT stage (method.grpo.sft_stage): trained first into output_dir/sft, or reused once finished,
with the run's GRPO prompts read and checked before it trains."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from training import grpo
from training.config import to_dict
from training.data_rows import check_eval_left
from training.errors import KosovError
from training.models import check_remote_code, end_of_turn_id, load_tokenizer, model_source
from training.recipes import compose
from training.redaction import redact
from training.run_dir import hydra_value
from training.resume_checks import check_same_recipe
from training.schema import KosovConfig

log = logging.getLogger(__name__)


STAGE_MODEL_KEYS = ("name_or_path", "revision", "trust_remote_code", "chat_template", "end_of_turn_token", "tiny")


def run_sft_stage(cfg: KosovConfig, output_dir: Path) -> Path:
    """The SFT run a GRPO recipe starts from (method.grpo.sft_stage), in output_dir/sft; reused once finished,
    if its recipe is still the one it trained with. It trains the base GRPO loads: at the same revision."""
    stage_dir = output_dir / "sft"
    stage = compose([*cfg.method.grpo.sft_stage, f"output_dir={hydra_value(str(stage_dir))}", f"overwrite={cfg.overwrite}",
                     f"resume={cfg.resume}", f"device={cfg.device}"])
    if stage.model.name_or_path == cfg.model.name_or_path and stage.model.revision not in (None, cfg.model.revision):
        raise KosovError(f"the SFT stage pins {cfg.model.name_or_path} at {stage.model.revision}, GRPO at "
                         f"{cfg.model.revision}", fix="pin both to the same commit with model.revision=<sha>")
    if stage.model.name_or_path != cfg.model.name_or_path:
        log.info("the SFT stage trains the run's base %s (its recipe names %s)", cfg.model.name_or_path,
                 stage.model.name_or_path)
    # The stage trains the base GRPO loads, as the run names it (model.name_or_path=/models/Qwen3-1.7B on the
    # command line holds for both stages): the same weights, revision, code, chat template and end of turn.
    stage.model = dataclasses.replace(stage.model, **{key: getattr(cfg.model, key) for key in STAGE_MODEL_KEYS})
    if (stage_dir / "metrics.json").is_file() and not cfg.overwrite:
        check_same_recipe(stage_dir, redact(to_dict(stage)), f"the finished SFT stage in {stage_dir} would be reused")
        log.info("SFT stage already finished in %s: starting GRPO from its adapter", stage_dir)
        return stage_dir / "adapter"
    check_grpo_prompts(cfg)
    log.info("SFT stage first: %s", " ".join(cfg.method.grpo.sft_stage))
    from training.preemption import StoppedBySignal, resume_fix
    from training.train import train  # the stage is a run of its own

    try:
        return train(stage).run_dir / "adapter"
    except StoppedBySignal as e:  # the run to continue is the GRPO run, which continues its stage: its folder
        raise StoppedBySignal(e.what, where=e.where, fix=resume_fix(output_dir)) from None


def check_grpo_prompts(cfg: KosovConfig) -> None:
    """A chained run's GRPO prompts, read as its GRPO part will read them, before its SFT stage trains: bad rows,
    prompts too long, too few for a generation round, a column TRL keeps from the rewards stop the run now, not after
    the stage. (The GRPO part reads them again: they are short, and a resume checks them against the run's.)"""
    from accelerate import PartialState

    with PartialState().main_process_first():  # tiny-ko is built once, by the main process
        source, is_local = model_source(cfg.model)
    check_remote_code(cfg.model, source, is_local)
    tokenizer = load_tokenizer(cfg.model, source)
    data = grpo.build_data(cfg, tokenizer, end_of_turn_id(cfg.model, tokenizer))
    check_eval_left(cfg, data.summary, "method.grpo.max_prompt_length")
