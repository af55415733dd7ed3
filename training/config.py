"""The typed recipe schema, validated once before any model or dataset loads.

Hydra composes YAML from `recipes/`; `validate()` merges the result onto these dataclasses (unknown keys
and wrong types fail there) and then checks the values that have a fixed set of choices. Every error names
the key, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from training.errors import KosovError, choice_error

DTYPES = ("auto", "bfloat16", "float16", "float32")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
PEFT_METHODS = ("lora", "dora", "qlora", "none")
METHODS = ("sft", "grpo")
GRPO_LOSSES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo")
SCALE_REWARDS = ("group", "batch", "none")
VLLM_MODES = ("colocate", "server")
TRACKERS = ("wandb", "tensorboard", "none")
TRACKING_MODES = ("auto", "online", "offline")
ON_BAD_ROW = ("error", "skip")
SFT_TURNS = ("all", "last")
THINKING = ("auto", "on", "off")
DEVICES = ("auto", "cpu", "cuda")
EVAL_BACKENDS = ("hf", "vllm")
EVAL_THINKING = ("off", "on")


@dataclass
class TinyModelConfig:
    """Shape of the random-init Qwen3-architecture model built locally (`model.name_or_path=tiny-ko`)."""

    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 128
    max_position_embeddings: int = 2048
    # Larger than Qwen3's 0.02: with tied embeddings behind a final RMSNorm the logits of a random model are
    # bounded by the embedding norm, and LoRA alone could then barely move the loss of a 64-wide model.
    initializer_range: float = 0.1
    seed: int = 0


@dataclass
class ModelConfig:
    name_or_path: str = "tiny-ko"  # a hub id, a local folder, or "tiny-ko" (built locally)
    revision: Optional[str] = None  # branch, tag or commit sha; a commit sha when trust_remote_code
    dtype: str = "auto"  # auto = bfloat16 on a GPU that has it, float32 on CPU
    attn_implementation: str = "sdpa"
    trust_remote_code: bool = False  # runs Python from the model repo: needs a pinned revision
    # Qwen3-style templates (enable_thinking): auto = each assistant turn rendered in the mode its data implies
    # (thinking on when it carries reasoning_content, off otherwise); on / off = every turn in that mode.
    thinking: str = "auto"
    chat_template: Optional[str] = None  # path to a .jinja file replacing the tokenizer's template
    end_of_turn_token: Optional[str] = None  # closes an assistant turn; None = the tokenizer's eos
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)


@dataclass
class QuantizationConfig:
    """bitsandbytes 4-bit loading for QLoRA (GPU only)."""

    quant_type: str = "nf4"
    double_quant: bool = True
    compute_dtype: str = "bfloat16"


@dataclass
class PeftConfig:
    method: str = "lora"  # lora | dora | qlora | none (full fine-tune)
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: Any = "all-linear"  # "all-linear" or a list of module names
    modules_to_save: list[str] = field(default_factory=list)
    use_rslora: bool = False
    quantization: Optional[QuantizationConfig] = None  # set by peft=qlora


@dataclass
class SFTOptions:
    max_length: int = 2048
    packing: bool = False  # best-fit-decreasing packing into max_length blocks (padding-free)
    padding_free: bool = False  # flatten each batch with no padding (FlashAttention or packing)
    turns: str = "all"  # train on every assistant turn or only the last one


@dataclass
class GRPOOptions:
    num_generations: int = 8  # the group: completions sampled per prompt, compared with each other
    max_prompt_length: int = 512  # longer prompts fail or are skipped (data.on_overlong)
    max_completion_length: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    beta: float = 0.0  # KL weight; 0 = no reference model
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    epsilon: float = 0.2
    epsilon_high: Optional[float] = 0.28  # DAPO clip-higher
    num_iterations: int = 1
    mask_truncated_completions: bool = True
    use_vllm: bool = False  # generate with vLLM (GPU, `pip install kosov[vllm]`)
    vllm_mode: str = "colocate"  # colocate: in the training process; server: `trl vllm-serve` elsewhere
    vllm_gpu_memory_utilization: float = 0.3
    vllm_enable_sleep_mode: bool = False
    vllm_server_host: str = "0.0.0.0"
    vllm_server_port: int = 8000
    log_completions: bool = False
    # Overrides composing an SFT run that trains first (into output_dir/sft); GRPO starts from its adapter.
    sft_stage: Optional[list[str]] = None


@dataclass
class MethodConfig:
    name: str = "sft"
    learning_rate: float = 2e-4
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = 0.03  # < 1: a share of all steps; >= 1: a number of steps
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    num_train_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    per_device_train_batch_size: int = 4
    per_device_eval_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    activation_checkpointing: bool = False  # recompute activations in backward: less memory, ~20% slower
    optim: str = "adamw_torch"
    bf16: Optional[bool] = None  # None = on when the GPU supports it
    logging_steps: int = 10
    eval_steps: int = 50
    save_steps: int = 100
    save_total_limit: int = 2
    dataloader_num_workers: int = 0
    init_adapter: Optional[str] = None  # continue training this adapter (a folder, or a run folder with adapter/)
    sft: Optional[SFTOptions] = None
    grpo: Optional[GRPOOptions] = None


@dataclass
class DataConfig:
    name: str = "ko-chat-seed"
    train_files: list[str] = field(default_factory=list)  # local .jsonl / .json / .parquet
    eval_files: list[str] = field(default_factory=list)  # empty = split eval_ratio off the train rows
    hub_id: Optional[str] = None  # a Hugging Face dataset id instead of train_files
    hub_config: Optional[str] = None
    hub_split: str = "train"
    hub_revision: Optional[str] = None
    eval_ratio: float = 0.05
    max_rows: Optional[int] = None  # use only the first N rows (quick runs)
    on_bad_row: str = "error"  # a malformed row stops the run, or is skipped and counted
    on_overlong: str = "error"  # a row longer than max_length stops the run, or is skipped and counted


@dataclass
class TrackingConfig:
    backend: str = "none"
    project: str = "kosov"
    entity: Optional[str] = None
    mode: str = "auto"  # wandb: auto = online when an API key is configured, offline otherwise
    tags: list[str] = field(default_factory=list)


@dataclass
class GenerativeEvalConfig:
    """kosov's own generative evaluation: answers generated and graded in Python."""

    enabled: bool = False
    data: str = ""  # prompt rows (pkg:// or a path)
    limit: Optional[int] = None  # first N prompts
    max_new_tokens: int = 512


@dataclass
class EvalConfig:
    suite: str = "none"  # the suite's name in reports
    tasks: list[str] = field(default_factory=list)  # lm-eval task or group names (built-in or kosov's local ones)
    num_fewshot: Optional[int] = None
    limit: Optional[float] = None  # lm-eval limit: N examples per task, or a share when < 1
    batch_size: str = "auto"
    apply_chat_template: bool = False
    backend: str = "hf"  # hf (transformers + PEFT) or vllm (GPU)
    adapter: Optional[str] = None  # an adapter (or run folder) to compare with the base; null = base only
    thinking: list[str] = field(default_factory=lambda: ["off"])  # modes for the generative evals: off, on
    math: GenerativeEvalConfig = field(default_factory=GenerativeEvalConfig)  # held-out Korean math accuracy
    language: GenerativeEvalConfig = field(default_factory=GenerativeEvalConfig)  # foreign-script rate
    cache: bool = True  # reuse results for the same (model, adapter, task, settings)
    every_n_steps: int = 0  # during training: run this suite every N steps and at the end (0 = off)


@dataclass
class PublishConfig:
    private: bool = True  # a new Hub repo is private until you make it public
    tag: Optional[str] = None  # a git tag for the uploaded revision (e.g. v1); null = none
    merge: bool = False  # also export base + adapter merged into a full model folder (output_dir/merged)
    eval_report: Optional[str] = None  # a kosov eval folder (or its report.json) of this adapter, for the card
    license: Optional[str] = None  # override the license derived from the base and the data
    commit_message: str = "Upload a Korean LoRA adapter trained with kosov"


@dataclass
class KosovConfig:
    name: str = "default"  # the experiment name: run folders and tracker runs are named by it
    seed: int = 42
    output_dir: Optional[str] = None  # None = outputs/<name>/<timestamp>
    overwrite: bool = False  # replace an existing run folder
    resume: bool = False  # continue the run in output_dir from its last checkpoint
    device: str = "auto"
    mirror: Optional[str] = None  # a `kosov mirror` folder: models and benchmark data read from it, offline
    model: ModelConfig = field(default_factory=ModelConfig)
    peft: PeftConfig = field(default_factory=PeftConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    rewards: dict[str, Any] = field(default_factory=dict)  # GRPO: reward name -> {weight, parameters}
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: Optional[str] = None  # kosov publish: the run folder to release
    push: bool = False  # kosov publish: upload to the Hub (without it nothing leaves the machine)
    repo_id: Optional[str] = None  # kosov publish: the Hub repo (org/name) to push to
    publish: PublishConfig = field(default_factory=PublishConfig)


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def schema_at(path: list[str]) -> type | None:
    """The dataclass found by following `path` from KosovConfig, or None where it leaves the schema."""
    cls: Any = KosovConfig
    for part in path:
        hint = typing.get_type_hints(cls).get(part)
        candidates = [hint, *typing.get_args(hint)]  # unwrap Optional[X]
        cls = next((c for c in candidates if dataclasses.is_dataclass(c)), None)
        if cls is None:
            return None
    return cls


def unknown_key_error(full_key: str) -> KosovError:
    parent = full_key.rpartition(".")[0]
    cls = schema_at(parent.split(".")) if parent else KosovConfig
    allowed = field_names(cls) if cls else []
    section = parent or "the top level"
    return KosovError(
        f"unknown recipe key '{full_key}'",
        fix=f"keys allowed in {section}: {', '.join(allowed)}" if allowed else "check the key's spelling",
    )


def _check(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise choice_error(key, value, allowed)


def _check_positive(cfg: KosovConfig) -> None:
    positive = {
        "peft.r": cfg.peft.r,
        "peft.alpha": cfg.peft.alpha,
        "method.learning_rate": cfg.method.learning_rate,
        "method.per_device_train_batch_size": cfg.method.per_device_train_batch_size,
        "method.per_device_eval_batch_size": cfg.method.per_device_eval_batch_size,
        "method.gradient_accumulation_steps": cfg.method.gradient_accumulation_steps,
        "method.logging_steps": cfg.method.logging_steps,
        "method.eval_steps": cfg.method.eval_steps,
        "method.save_steps": cfg.method.save_steps,
    }
    for key, value in positive.items():
        if not value > 0:
            raise KosovError(f"{key}={value!r} must be greater than 0")
    if not 0.0 <= cfg.peft.dropout < 1.0:
        raise KosovError(f"peft.dropout={cfg.peft.dropout!r} must be in [0, 1)")
    if not 0.0 <= cfg.data.eval_ratio < 1.0:
        raise KosovError(f"data.eval_ratio={cfg.data.eval_ratio!r} must be in [0, 1)")


def _check_semantics(cfg: KosovConfig) -> None:
    _check("model.dtype", cfg.model.dtype, DTYPES)
    _check("model.thinking", cfg.model.thinking, THINKING)
    _check("model.attn_implementation", cfg.model.attn_implementation, ATTN_IMPLEMENTATIONS)
    _check("peft.method", cfg.peft.method, PEFT_METHODS)
    _check("method.name", cfg.method.name, METHODS)
    _check("tracking.backend", cfg.tracking.backend, TRACKERS)
    _check("tracking.mode", cfg.tracking.mode, TRACKING_MODES)
    _check("data.on_bad_row", cfg.data.on_bad_row, ON_BAD_ROW)
    _check("data.on_overlong", cfg.data.on_overlong, ON_BAD_ROW)
    _check("device", cfg.device, DEVICES)
    _check_positive(cfg)
    if isinstance(cfg.peft.target_modules, str) and cfg.peft.target_modules != "all-linear":
        raise KosovError(
            f"peft.target_modules={cfg.peft.target_modules!r} is not allowed",
            fix="use 'all-linear' or a list of module names, e.g. peft.target_modules=[q_proj,v_proj]",
        )
    if (cfg.peft.method == "qlora") != (cfg.peft.quantization is not None):
        raise KosovError(
            f"peft.method={cfg.peft.method!r} with peft.quantization={'set' if cfg.peft.quantization else 'null'}",
            fix="use peft=qlora for 4-bit QLoRA (it sets both), or peft=lora / dora without quantization",
        )
    if cfg.method.name == "sft":
        if cfg.method.sft is None:
            raise KosovError("method.name='sft' needs a method.sft block", fix="compose with method=sft")
        _check("method.sft.turns", cfg.method.sft.turns, SFT_TURNS)
        if cfg.method.sft.max_length <= 0:
            raise KosovError(f"method.sft.max_length={cfg.method.sft.max_length} must be greater than 0")
    if cfg.method.name == "grpo":
        _check_grpo(cfg)
    _check("eval.backend", cfg.eval.backend, EVAL_BACKENDS)
    for mode in cfg.eval.thinking:
        _check("eval.thinking", mode, EVAL_THINKING)
    for key in ("math", "language"):
        own = getattr(cfg.eval, key)
        if own.enabled and not own.data:
            raise KosovError(f"eval.{key}.enabled=true needs eval.{key}.data (prompt rows)")
    if not cfg.data.train_files and not cfg.data.hub_id:
        raise KosovError("no training data: data.train_files is empty and data.hub_id is null",
                         fix="set data.train_files=[path/to/train.jsonl] or data.hub_id=org/dataset")
    if cfg.data.train_files and cfg.data.hub_id:
        raise KosovError("both data.train_files and data.hub_id are set", fix="use one source per data recipe")
    if cfg.resume and cfg.overwrite:
        raise KosovError("resume=true and overwrite=true contradict each other", fix="choose one")


def _check_grpo(cfg: KosovConfig) -> None:
    from training.rewards import reward_params

    grpo = cfg.method.grpo
    if grpo is None:
        raise KosovError("method.name='grpo' needs a method.grpo block", fix="compose with method=grpo")
    _check("method.grpo.loss_type", grpo.loss_type, GRPO_LOSSES)
    _check("method.grpo.scale_rewards", grpo.scale_rewards, SCALE_REWARDS)
    _check("method.grpo.vllm_mode", grpo.vllm_mode, VLLM_MODES)
    for key in ("num_generations", "max_prompt_length", "max_completion_length", "num_iterations"):
        if getattr(grpo, key) <= 0:
            raise KosovError(f"method.grpo.{key}={getattr(grpo, key)} must be greater than 0")
    if grpo.num_generations < 2:
        raise KosovError("method.grpo.num_generations must be at least 2: GRPO compares completions in a group")
    if not cfg.rewards:
        raise KosovError("GRPO needs at least one reward", fix="e.g. rewards=[math_accuracy,language_consistency]")
    for name, node in cfg.rewards.items():
        reward_params(name, node if isinstance(node, dict) else {})
    if grpo.sft_stage and cfg.method.init_adapter:
        raise KosovError("method.grpo.sft_stage and method.init_adapter both name a starting adapter",
                         fix="keep one")


def validate(cfg: DictConfig | dict) -> KosovConfig:
    """Merge a composed recipe onto the schema and check every value. Raises KosovError."""
    raw = OmegaConf.create(cfg) if isinstance(cfg, dict) else cfg
    raw = OmegaConf.masked_copy(raw, [k for k in raw.keys() if k != "hydra"]) if "hydra" in raw else raw
    try:
        merged = OmegaConf.merge(OmegaConf.structured(KosovConfig), raw)
        config: KosovConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except ConfigKeyError as e:
        raise unknown_key_error(str(e.full_key)) from None
    except ValidationError as e:
        raise KosovError(f"recipe key '{e.full_key}': {e.msg}") from None
    except OmegaConfBaseException as e:
        raise KosovError(f"recipe could not be resolved: {e.msg}", where=str(getattr(e, "full_key", "") or "")) from None
    _check_semantics(config)
    return config


def to_dict(cfg: KosovConfig) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def resolve_path(path: str) -> Path:
    """A data path from a recipe: absolute, relative to the working directory, or `pkg://data_tools/...`."""
    if path.startswith("pkg://"):
        package, _, rest = path.removeprefix("pkg://").partition("/")
        import importlib.util

        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise KosovError(f"package '{package}' of data path '{path}' is not installed")
        return Path(list(spec.submodule_search_locations)[0]) / rest
    return Path(path).expanduser()
