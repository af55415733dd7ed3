"""The typed recipe schema: one dataclass per recipe section, with its defaults and what each key means.

Hydra composes YAML from `recipes/` onto these (training/recipes.py registers KosovConfig as the first default),
and training/config.py validates the values that have a fixed set of choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

DTYPES = ("auto", "bfloat16", "float16", "float32")
ATTN_IMPLEMENTATIONS = ("auto", "sdpa", "eager", "flash_attention_2", "flex_attention")
KERNELS = ("auto", "liger", "off")
GRPO_GENERATION = ("auto", "vllm", "continuous_batching", "transformers")
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
GENERATORS = ("math", "self_instruct", "evol_instruct", "magpie", "translate", "distill")
TEACHER_BACKENDS = ("none", "transformers", "vllm", "http")
SYNTH_FORMATS = ("sft", "grpo")


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
    dtype: str = "auto"  # auto: a frozen base in bf16 on GPU (fp16 on V100/T4); fp32 on CPU and for peft=none
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
    compute_dtype: str = "auto"  # auto: bfloat16 on GPUs that have it, float16 on older ones (V100, T4)


@dataclass
class PeftConfig:
    method: str = "lora"  # lora | dora | qlora | none (full fine-tune)
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: Any = "all-linear"  # "all-linear" or a list of module names
    # Parameters that are not inside an nn.Linear, e.g. the fused 3-D MoE experts of transformers 5
    # ([mlp.experts.gate_up_proj, mlp.experts.down_proj] for Qwen3-MoE); PEFT needs dropout 0 and no DoRA for them.
    target_parameters: list[str] = field(default_factory=list)
    modules_to_save: list[str] = field(default_factory=list)
    use_rslora: bool = False
    quantization: Optional[QuantizationConfig] = None  # set by peft=qlora


@dataclass
class SFTOptions:
    max_length: int = 2048
    packing: bool = False  # best-fit-decreasing packing into max_length blocks (padding-free)
    padding_free: bool = False  # flatten each batch with no padding (for FlashAttention / flex_attention; SDPA warns)
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
    epsilon_high: Optional[float] = 0.28  # DAPO clip-higher; loss_type=cispo caps IS weights at it: use 5.0 there
    num_iterations: int = 1
    mask_truncated_completions: bool = True
    # auto: vLLM in the training process when installed on a GPU, else transformers continuous batching on a
    # GPU (also with QLoRA: TRL 1.16 cannot sync 4-bit weights to vLLM; and for a hub model pinned to a revision,
    # which TRL does not pass to vLLM), else plain transformers generate (CPU, and remote-code models like KORMo,
    # which neither vLLM nor continuous batching runs). vllm is GPU-only and fails clearly on CPU;
    # continuous_batching also runs on CPU when asked for.
    generation: str = "auto"
    # Completions generated per generation round: null = one optimizer step's (on-policy). A multiple of that
    # generates for several steps at once (fuller batches for the engine; later steps slightly off-policy).
    generation_batch_size: Optional[int] = None
    # The same in optimizer steps: a round generates that many steps' completions on any number of GPUs (each GPU
    # generates its share, so its load stays the same). Set one of the two; null here = generation_batch_size's.
    optimizer_steps_per_generation: Optional[int] = None
    # Share of the free GPU memory (after the model loads) continuous batching may take for its KV cache;
    # null = TRL's 0.5, leaving the rest to the training step.
    continuous_batching_memory: Optional[float] = None
    # CUDA graphs for continuous batching's forward passes (a decoding step's kernels replayed in one launch):
    # null = on a GPU unless the base is 4-bit (3.72x TRL's GRPO steps/s against 1.28x without, on an H100), off
    # for a 4-bit base (not measured); true / false force them (true needs a GPU).
    continuous_batching_cuda_graphs: Optional[bool] = None
    vllm_mode: str = "colocate"  # colocate: in the training process; server: `trl vllm-serve` elsewhere
    vllm_max_model_length: Optional[int] = None  # null = max_prompt_length + max_completion_length
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
    kernels: str = "off"  # fused Liger kernels (GPU): auto = when liger-kernel is installed on a GPU
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
    num_proc: Optional[int] = None  # processes rendering SFT rows; null = one per CPU core for 20,000 rows or more


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
    thinking: list[str] = field(default_factory=lambda: ["off"])  # modes (off, on) of the generative evals and of
    # chat-templated lm-eval tasks
    thinking_max_new_tokens: Optional[int] = 8192  # with thinking on: the generation limit of generating lm-eval
    # tasks (their max_gen_toks: HRM8K's 2048 cuts off many Qwen3 traces, graded wrong) and of kosov's own evals
    # (their max_new_tokens); null: each keeps its own. Thinking off always keeps its own
    math: GenerativeEvalConfig = field(default_factory=GenerativeEvalConfig)  # held-out Korean math accuracy
    language: GenerativeEvalConfig = field(default_factory=GenerativeEvalConfig)  # foreign-script rate
    cache: bool = True  # reuse results for the same (model, adapter, task, settings)
    every_n_steps: int = 0  # during training: run this suite every N steps and at the end (0 = off)


@dataclass
class PublishConfig:
    private: Optional[bool] = None  # null: a new Hub repo is private, an existing one keeps its visibility;
    # true / false: the repo must be (or is created) private / public, and an existing repo that is not is refused
    tag: Optional[str] = None  # a git tag for the uploaded revision (e.g. v1); null = none
    merge: bool = False  # also export base + adapter merged into a full model folder (output_dir/merged)
    eval_report: Optional[str] = None  # a kosov eval folder (or its report.json) of this adapter, for the card
    license: Optional[str] = None  # override the license derived from the base and the data
    base_model: Optional[str] = None  # the Hub id users load the base from; needed when the run's base is a folder
    # the folder of the adapter (or its run) the run started from, where its provenance.json records it as a relative
    # path (kosov before 2026-11-27), or it moved or was deleted: its data and licenses go on the card. It must have
    # the LoRA shape the run recorded; the card says the publisher gave it. null = as recorded
    start_adapter: Optional[str] = None
    commit_message: str = "Upload a Korean LoRA adapter trained with kosov"


@dataclass
class TeacherConfig:
    """The LLM that writes data for the LLM-driven generators (data_tools.teachers)."""

    backend: str = "none"  # transformers (the recipe's model, here) | vllm (GPU) | http (OpenAI-compatible)
    adapter: Optional[str] = None  # transformers / vllm: an adapter (or run folder) on the recipe's model
    base_url: Optional[str] = None  # http: e.g. http://127.0.0.1:8000/v1 (kosov serve) or a hosted API
    model: Optional[str] = None  # http: the model name the endpoint serves; null = model.name_or_path
    api_key_env: str = "OPENAI_API_KEY"  # http: the environment variable holding the key (never written)
    concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 5
    batch_size: int = 8  # transformers: prompts per generate() call
    max_new_tokens: int = 1024
    temperature: Optional[float] = None  # null: each generator's own (distill 0.7, self_instruct 1.0, translate 0.2...)
    thinking: str = "off"  # the teacher's thinking mode (Qwen3-style templates): off | on
    keep_thinking: bool = False  # keep the teacher's thinking as reasoning_content, or strip it


@dataclass
class SynthConfig:
    generator: str = "math"
    n: int = 1000  # rows to write (before the quality gates)
    format: str = "sft"  # math: sft (worked solutions) or grpo (prompts with an answer column)
    split: Optional[str] = None  # math: train | test (held out by exercise: template and numbers) | null (both)
    families: list[str] = field(default_factory=list)  # math families; [] = all twelve
    difficulties: list[int] = field(default_factory=lambda: [1, 2, 3])
    style: str = "mixed"  # math: formal (합쇼체) | plain (해요체) | mixed
    inputs: list[str] = field(default_factory=list)  # seed tasks / instructions / English rows / prompts (files)
    system: Optional[str] = None  # magpie, distill: a system prompt for the teacher
    evol_rounds: int = 1
    evol_operations: list[str] = field(default_factory=lambda: ["deepen", "broaden"])
    source: str = "kosov/synth"  # recorded in each row's meta
    license: str = "Apache-2.0"  # of the rows written: check the teacher's terms and the inputs' licenses
    gates: dict[str, Any] = field(default_factory=dict)  # quality gate -> parameters (data_tools.gates)
    decontaminate_with: list[str] = field(default_factory=list)  # evaluation files no row may overlap
    teacher: TeacherConfig = field(default_factory=TeacherConfig)


@dataclass
class ServeConfig:
    """`kosov serve`: an OpenAI-compatible server for the recipe's model (+ an adapter)."""

    host: str = "127.0.0.1"  # 0.0.0.0 opens it to the network: set api_key_env then
    port: int = 8000  # 0 = any free port (the log says which)
    adapter: Optional[str] = None  # an adapter folder or a kosov run folder; null = the base alone
    max_batch: int = 1  # queued requests generated together; each still samples from its own seeded RNG
    model_name: Optional[str] = None  # the id clients send as "model"; null = name_or_path[+adapter]
    api_key_env: Optional[str] = None  # an environment variable holding the key clients must send; null = none
    # Ctrl-C/SIGTERM: the requests received (generating or queued) get this long, then those left answer a JSON 503;
    # null = wait for all. Under 30 s: Kubernetes and Slurm send SIGKILL 30 s after SIGTERM by default.
    shutdown_timeout_s: Optional[float] = 25.0


# The top-level keys of a run's metrics.json (run_metrics.summarize), which `objective` may name.
METRIC_KEYS = ("global_step", "epochs", "first_train_loss", "last_train_loss", "train_loss_curve", "first_eval_loss",
               "eval_loss", "eval_loss_curve", "tokens_seen", "train_runtime_s", "wall_time_s", "trainable_parameters",
               "rewards", "reward_curve", "eval_rewards", "data", "suite_failures")


@dataclass
class KosovConfig:
    name: str = "default"  # the experiment name: run folders and tracker runs are named by it
    seed: int = 42
    output_dir: Optional[str] = None  # None = outputs/<name>/<timestamp>
    overwrite: bool = False  # replace an existing run folder
    resume: bool = False  # continue the run in output_dir from its last checkpoint
    device: str = "auto"
    mirror: Optional[str] = None  # a `kosov mirror` folder: models and benchmark data read from it, offline
    objective: Optional[str] = None  # a metrics.json key (dotted: rewards.reward.last) returned to Hydra sweepers
    model: ModelConfig = field(default_factory=ModelConfig)
    peft: PeftConfig = field(default_factory=PeftConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    rewards: dict[str, Any] = field(default_factory=dict)  # GRPO: reward name -> {weight, parameters}
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: Optional[str] = None  # kosov publish: the run folder to release
    release: Optional[str] = None  # kosov publish: instead of run=, a release folder built earlier, pushed as it is
    push: bool = False  # kosov publish: upload to the Hub (without it nothing leaves the machine)
    repo_id: Optional[str] = None  # kosov publish: the Hub repo (org/name) to push to
    publish: PublishConfig = field(default_factory=PublishConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
