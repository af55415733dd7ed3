"""Loading a base model and its tokenizer: the embedded tiny-ko, a local folder, or a hub id at a revision.

Every GPU-only or risky request is checked before anything is downloaded or loaded: QLoRA and
FlashAttention need CUDA (and their packages), and `trust_remote_code` needs an explicit recipe setting
plus a pinned commit.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from training.schema import KosovConfig, ModelConfig, PeftConfig
from training.adapters import check_adapter_base
from training.errors import KosovError

log = logging.getLogger(__name__)

COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_device(requested: str) -> str:
    if requested == "cuda" and not cuda_available():
        raise KosovError("device=cuda was asked for, but PyTorch sees no CUDA GPU",
                         fix="run on a GPU machine with a CUDA build of torch (README: GPU quick start), or "
                             "device=auto")
    if requested == "auto":
        return "cuda" if cuda_available() else "cpu"
    return requested


def model_source(mcfg: ModelConfig) -> tuple[str, bool]:
    """(what from_pretrained gets, whether it is a local folder). Builds tiny-ko on first use. A folder by its full
    path: PEFT records it in an adapter's base_model_name_or_path, which check_adapter_base compares wherever the
    adapter is used (a relative `base` named whichever folder of that name the working folder held)."""
    if mcfg.name_or_path == "tiny-ko":
        from training.tiny_ko import tiny_model_dir

        return str(tiny_model_dir(mcfg.tiny).resolve()), True
    path = Path(mcfg.name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise KosovError(f"model.name_or_path={mcfg.name_or_path!r} is a folder without a config.json",
                             fix="give the folder holding the model's config.json and weights")
        return str(path.resolve()), True
    if mcfg.name_or_path.startswith(("/", "./", "../", "~")) or mcfg.name_or_path.count("/") > 1:
        raise KosovError(f"model.name_or_path={mcfg.name_or_path!r}: no such folder",
                         fix="check the path (relative paths start from the folder you run kosov in)")
    if path.parent.name and path.parent.is_dir():  # "models/Qwen3-1.7B" reads as a hub id too
        log.warning("there is no folder %s here (though %s/ exists): loading the hub model %s", path, path.parent,
                    mcfg.name_or_path)
    if not HUB_ID.match(mcfg.name_or_path):
        raise KosovError(f"model.name_or_path={mcfg.name_or_path!r} is neither a local folder nor a hub id",
                         fix="give an existing folder, a hub id like Qwen/Qwen3-1.7B, or tiny-ko")
    return mcfg.name_or_path, False


def _code_elsewhere(mcfg: ModelConfig, source: str, is_local: bool) -> list[str]:
    """auto_map entries of the model's config and tokenizer config that name code in another repo
    ("other/repo--module.Class"): transformers loads those from the other repo's latest commit, not the pinned one."""
    found = []
    for name in ("config.json", "tokenizer_config.json"):
        if is_local:
            path: Path | None = Path(source) / name
        else:
            from huggingface_hub import hf_hub_download

            try:
                path = Path(hf_hub_download(source, name, revision=mcfg.revision))
            except Exception:  # noqa: BLE001 - missing or unreachable: loading reports it, with its own fix
                path = None
        if path is None or not path.is_file():
            continue
        try:
            auto_map = json.loads(path.read_text(encoding="utf-8")).get("auto_map") or {}
        except (ValueError, AttributeError):
            continue
        for value in auto_map.values():
            for ref in value if isinstance(value, list) else [value]:
                if isinstance(ref, str) and "--" in ref and ref.split("--", 1)[0] != source:
                    found.append(f"{name}: {ref}")
    return found


def check_remote_code(mcfg: ModelConfig, source: str, is_local: bool) -> None:
    """Remote code runs only when the recipe asks for it, pinned to a commit of the model repo, and only code of
    that repo (or folder): an auto_map naming another repo would run that repo's latest code, pinned to nothing."""
    if not mcfg.trust_remote_code:
        return
    if not is_local and not (mcfg.revision and COMMIT_SHA.match(mcfg.revision)):
        raise KosovError(
            f"model.trust_remote_code=true for {mcfg.name_or_path} with model.revision={mcfg.revision!r}",
            fix="remote code runs Python from the model repo, so kosov runs it only pinned to a reviewed commit: "
                "set model.revision to the full 40-character commit sha you have read",
        )
    elsewhere = _code_elsewhere(mcfg, source, is_local)
    if elsewhere:
        raise KosovError(
            f"model.trust_remote_code=true, but {mcfg.name_or_path} takes its code from another repo: {elsewhere}; "
            "transformers would run that repo's latest code, which no revision here pins",
            fix="copy the code files into a local folder with the model (and auto_map without 'repo--'), or use a "
                "model whose code lives in its own repo")
    if is_local:
        code = sorted(p.name for p in Path(source).glob("*.py"))
        log.warning("model.trust_remote_code=true: running the Python files of %s: %s", source, code or "none")


def bf16_gpu() -> bool:
    """Whether this CUDA GPU computes in bf16 natively (Ampere or newer). torch.cuda.is_bf16_supported() alone
    also answers True on a V100 or T4, where bf16 only runs emulated and slowly: kosov uses fp16 there."""
    import torch

    return torch.cuda.is_bf16_supported(including_emulation=False)


def torch_dtype(mcfg: ModelConfig, device: str, trains_all: bool = False):
    """model.dtype=auto: a frozen base (LoRA) in bf16 on GPUs that have it, fp16 on older ones (V100, T4); weights
    that all train (a full fine-tune) in fp32, the master copy that bf16 / fp16 autocast computes from: in bf16,
    Adam's steps at full fine-tune rates (~1e-5) are mostly below the weights' rounding step and vanish. fp32 on
    CPU."""
    import torch

    if mcfg.dtype == "auto":
        if device != "cuda" or trains_all:
            return torch.float32
        return torch.bfloat16 if bf16_gpu() else torch.float16
    return getattr(torch, mcfg.dtype)


def compute_dtype(quant: Any, device: str):
    """QLoRA's compute dtype: peft.quantization.compute_dtype, auto = bf16 on GPUs that have it, else fp16."""
    import torch

    if quant.compute_dtype == "auto":
        return torch.bfloat16 if device == "cuda" and bf16_gpu() else torch.float16
    return getattr(torch, quant.compute_dtype)


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def sharded_by(environ: Mapping[str, str] | None = None) -> str | None:
    """What shards the model's weights across the processes, as accelerate launch tells them: "FSDP",
    "DeepSpeed ZeRO-3", or None (one process, DDP, ZeRO-1/2: each process holds the whole model)."""
    env = os.environ if environ is None else environ
    if env.get("ACCELERATE_USE_FSDP", "").lower() in ("true", "1"):
        return "FSDP"
    return "DeepSpeed ZeRO-3" if env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3" else None


def flash_attention_ready() -> str | None:
    """None when FlashAttention 2 can run here, else why not: the flash-attn package must import against this
    torch (transformers checks it) and the GPU must be Ampere or newer (compute capability 8.0+)."""
    import torch
    from transformers.utils import is_flash_attn_2_available

    if not installed("flash_attn"):
        return "the flash-attn package is not installed"
    if not is_flash_attn_2_available():
        return "flash-attn is installed but not usable with this torch (transformers finds no CUDA or flash-attn < 2.3.3)"
    major, minor = torch.cuda.get_device_capability()
    if major < 8:
        return f"this GPU ({torch.cuda.get_device_name()}) has compute capability {major}.{minor}; FlashAttention 2 needs 8.0+"
    return None


def half_compute(mcfg: ModelConfig, device: str, trains_all: bool = False, autocast: bool = False) -> bool:
    """Whether attention computes in fp16 / bf16, which FlashAttention 2 needs: weights loaded in half precision
    (torch_dtype), or fp32 weights under training's bf16 / fp16 autocast (`autocast`), which transformers' flash
    attention casts its inputs to. fp32 weights where nothing autocasts (eval, serve, merge, model.dtype=float32
    with method.bf16=false) compute in fp32, which flash-attn refuses at the first forward."""
    if autocast:
        return True
    if mcfg.dtype == "auto":
        return device == "cuda" and not trains_all
    return mcfg.dtype in ("float16", "bfloat16")


def attention_for(mcfg: ModelConfig, device: str, trains_all: bool = False, autocast: bool = False) -> str:
    """The attention kernel: auto = FlashAttention 2 on a GPU where it can run and attention computes in fp16 /
    bf16 (half_compute), else SDPA."""
    if mcfg.attn_implementation != "auto":
        return mcfg.attn_implementation
    fast = device == "cuda" and half_compute(mcfg, device, trains_all, autocast)
    return "flash_attention_2" if fast and flash_attention_ready() is None else "sdpa"


def liger_supports(model_type: str) -> bool:
    """Whether liger-kernel (installed) has kernels for this architecture; for others it applies nothing."""
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    return model_type in MODEL_TYPE_TO_APPLY_LIGER_FN


def liger_for(choice: str, device: str, model_type: str | None = None) -> bool:
    """Whether the Trainer patches the model with Liger's fused kernels (method.kernels: auto / liger / off);
    with the model's type known, only where Liger has kernels for it (e.g. not KORMo's remote-code `kormo`)."""
    if choice == "liger":
        if device != "cuda":
            raise KosovError("Liger kernels (method.kernels=liger) need a CUDA GPU: their Triton kernels do not run "
                             "on CPU", fix="use method.kernels=off (or auto) on CPU")
        if not installed("liger_kernel"):
            raise KosovError("method.kernels=liger, but liger-kernel is not installed", fix="pip install 'kosov[gpu]'")
        if model_type is not None and not liger_supports(model_type):
            raise KosovError(f"method.kernels=liger, but liger-kernel has no kernels for model type {model_type!r}",
                             fix="use method.kernels=auto or off for this model (KORMo: `kosov convert kormo` makes "
                                 "it a Llama, which Liger supports)")
        return True
    on = choice == "auto" and device == "cuda" and installed("liger_kernel")
    return on and (model_type is None or liger_supports(model_type))


def config_model_type(mcfg: ModelConfig, source: str, revision: str | None) -> str | None:
    """The model_type in the base's config.json (at `revision`), read without its weights or any remote code."""
    from transformers import PretrainedConfig

    try:
        config, _ = PretrainedConfig.get_config_dict(source, revision=revision)
    except (OSError, ValueError) as e:
        raise _load_error("config", mcfg.name_or_path, e) from None
    return config.get("model_type")


def check_kernels(mcfg: ModelConfig, source: str, device: str, choice: str, revision: str | None = None) -> None:
    """method.kernels=liger against the base's architecture, read from its config before the data and the weights
    load (liger_for: Liger has no kernels for KORMo's remote-code `kormo`). `revision`: the commit the run loads."""
    if choice == "liger":
        liger_for(choice, device, config_model_type(mcfg, source, revision))


def check_attention(mcfg: ModelConfig, device: str, training: bool = True, trains_all: bool = False,
                    autocast: bool = False) -> None:
    """model.attn_implementation against this machine and the dtype attention computes in (trains_all, autocast: as
    for half_compute)."""
    if mcfg.attn_implementation == "flex_attention" and device != "cuda" and training:
        # PyTorch's FlexAttention runs forward on CPU (eval and serve may use it) but has no backward there
        # ("FlexAttention does not support backward on CPU"): training would fail at its first step, after loading.
        raise KosovError("FlexAttention (model.attn_implementation=flex_attention) is a GPU path: PyTorch has no "
                         "FlexAttention backward on CPU", fix="use model.attn_implementation=sdpa (or auto) on CPU")
    if mcfg.attn_implementation != "flash_attention_2":
        return
    if device != "cuda":
        raise KosovError("FlashAttention 2 (model.attn_implementation=flash_attention_2) needs a CUDA GPU",
                         fix="use model.attn_implementation=sdpa on CPU")
    if not half_compute(mcfg, device, trains_all, autocast):
        weights = f"model.dtype={mcfg.dtype}" + (" (fp32 for a full fine-tune)" if mcfg.dtype == "auto" else "")
        raise KosovError(f"FlashAttention 2 (model.attn_implementation=flash_attention_2) computes in fp16 or bf16 "
                         f"only, but {weights} loads fp32 weights and nothing autocasts them here"
                         + (" (method.bf16=false)" if training else ""),
                         fix="set model.dtype=bfloat16 (or float16 on a GPU without bf16), or use "
                             "model.attn_implementation=auto (SDPA for fp32 weights)"
                             + ("; or train with mixed precision (method.bf16 unset or true)" if training else ""))
    problem = flash_attention_ready()
    if problem:
        raise KosovError(f"FlashAttention 2 was asked for (model.attn_implementation=flash_attention_2), but {problem}",
                         fix="pip install 'kosov[gpu]' --no-build-isolation (README: GPU quick start) on an Ampere or "
                             "newer GPU, or use model.attn_implementation=sdpa (or auto)")


def quantization_config(pcfg: PeftConfig, device: str):
    """BitsAndBytesConfig for QLoRA (NF4, double quant, compute_dtype), or None."""
    if pcfg.quantization is None:
        return None
    if device != "cuda":
        raise KosovError("QLoRA (peft=qlora, 4-bit bitsandbytes) needs a CUDA GPU: bitsandbytes has no 4-bit "
                         "backward on CPU and would train silently wrong",
                         fix="use peft=lora on CPU, or run on a GPU machine")
    if not installed("bitsandbytes"):
        raise KosovError("QLoRA needs the bitsandbytes package", fix="pip install 'kosov[gpu]'")
    from transformers import BitsAndBytesConfig

    q = pcfg.quantization
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=q.quant_type,
                              bnb_4bit_use_double_quant=q.double_quant,
                              bnb_4bit_compute_dtype=compute_dtype(q, device))


def _load_error(what: str, name: str, error: Exception) -> KosovError:
    if "custom code" in str(error) or "trust_remote_code" in str(error):  # a model type transformers lacks (KORMo)
        return KosovError(f"could not load the {what} of {name}: its architecture exists only as remote code in the "
                          "checkpoint, and model.trust_remote_code is false",
                          fix="for KORMo: kosov convert kormo SRC DST makes a plain Llama checkpoint (no remote code); "
                              "or set model.trust_remote_code=true with model.revision=<the commit sha you reviewed>")
    return KosovError(f"could not load the {what} of {name}: {type(error).__name__}: {error}",
                      fix="check model.name_or_path and model.revision, your network and HF_TOKEN, or point "
                          "model.name_or_path at a local folder (offline machines: download it first)")


def load_tokenizer(mcfg: ModelConfig, source: str, require_template: bool = True):
    """The model's tokenizer, with the recipe's chat template when it sets one. require_template=False: for scoring
    without chat templates (lm-eval tasks alone), where a base checkpoint without one is fine."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=mcfg.revision,
                                                  trust_remote_code=mcfg.trust_remote_code)
    except (OSError, ValueError) as e:
        raise _load_error("tokenizer", mcfg.name_or_path, e) from None
    if mcfg.chat_template:
        path = Path(mcfg.chat_template).expanduser()
        if not path.is_file():
            raise KosovError(f"model.chat_template={mcfg.chat_template!r} is not a file")
        tokenizer.chat_template = path.read_text(encoding="utf-8")
    if require_template and not tokenizer.chat_template:
        raise KosovError(f"the tokenizer of {mcfg.name_or_path} has no chat template",
                         fix="set model.chat_template to a .jinja file (base checkpoints often ship without one)")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def end_of_turn_id(mcfg: ModelConfig, tokenizer: Any) -> int:
    token = mcfg.end_of_turn_token or tokenizer.eos_token
    token_id = tokenizer.convert_tokens_to_ids(token) if token else None
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise KosovError(f"the end-of-turn token {token!r} is not in the vocabulary of {mcfg.name_or_path}",
                         fix="set model.end_of_turn_token to the token that closes an assistant turn")
    return token_id


def stop_ids(mcfg: ModelConfig, tokenizer: Any) -> list[int]:
    """Where generation stops: the end of an assistant turn, as training taught it, and the tokenizer's end of text
    (a base checkpoint's generation config may name only the latter: <|endoftext|> where turns end <|im_end|>)."""
    ids = [end_of_turn_id(mcfg, tokenizer)]
    return ids + [tokenizer.eos_token_id] if tokenizer.eos_token_id not in (None, ids[0]) else ids


def load_base_model(cfg: KosovConfig, source: str, device: str, trains_all: bool = False, autocast: bool = False):
    """The base model, as the recipe asks; trains_all: every weight will train (a full fine-tune); autocast: it trains
    under fp16 / bf16 mixed precision (for the attention kernel of fp32 weights: attention_for)."""
    from transformers import AutoModelForCausalLM

    mcfg = cfg.model
    kwargs: dict[str, Any] = {
        "revision": mcfg.revision,
        "dtype": torch_dtype(mcfg, device, trains_all),
        "attn_implementation": attention_for(mcfg, device, trains_all, autocast),
        "trust_remote_code": mcfg.trust_remote_code,
    }
    quant = quantization_config(cfg.peft, device)
    if quant is not None:
        from accelerate import PartialState

        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": PartialState().local_process_index}
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as e:
        raise _load_error("weights", mcfg.name_or_path, e) from None
    sharded = sum(getattr(p, "ds_numel", 0) for p in model.parameters())  # ZeRO-3: a shard per process
    log.info("loaded %s (%s, %.1fM parameters, %s%s)", mcfg.name_or_path, kwargs["dtype"],
             (sharded or model.num_parameters()) / 1e6, kwargs["attn_implementation"],
             ", partitioned across processes as it loaded (ZeRO-3)" if sharded else "")
    return model


def zero3_init(precision: str) -> Any:
    """Under `accelerate launch` with a DeepSpeed ZeRO-3 config whose zero3_init_flag is true, from_pretrained must
    know before it builds the model: then each process loads only its shard (deepspeed.zero.Init), not the whole
    model into host memory once per GPU. TrainingArguments would say so, but kosov builds them after the model (they
    depend on it). `precision`: the Trainer's mixed precision (bf16 / fp16 / no), which zero.Init partitions in.
    Returns what keeps the setting alive (transformers holds a weak reference): hold it until the trainer exists
    (loading an adapter to continue, DoRA among them, reads it too), or None."""
    from accelerate.utils import DeepSpeedPlugin, str_to_bool

    if not str_to_bool(os.environ.get("ACCELERATE_USE_DEEPSPEED", "false")):
        return None
    plugin = DeepSpeedPlugin()  # reads the ACCELERATE_DEEPSPEED_* settings accelerate launch exported
    if plugin.zero_stage != 3 or not plugin.zero3_init_flag:
        return None
    plugin.set_mixed_precision(precision)
    plugin.set_deepspeed_weakref()
    return plugin


def load_for_inference(cfg: KosovConfig, source: str, device: str, adapter: Path | None = None):
    """The base (+ an adapter, checked to belong to it) on `device`, in eval mode: for generation and evaluation,
    where no trainer places the model."""
    if adapter is not None:  # another base or revision is refused before the weights load
        check_adapter_base(adapter, source, cfg.model.name_or_path, cfg.model.revision)
    model = load_base_model(cfg, source, device)
    if getattr(model, "hf_device_map", None) is None:  # a 4-bit model is placed by from_pretrained already
        model = model.to(device)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return model.eval()
