"""Loading a base model and its tokenizer: the embedded tiny-ko, a local folder, or a hub id at a revision.

Every GPU-only or risky request is checked before anything is downloaded or loaded: QLoRA and
FlashAttention need CUDA (and their packages), and `trust_remote_code` needs an explicit recipe setting
plus a pinned commit.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from training.schema import KosovConfig, ModelConfig, PeftConfig
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
                         fix="run on a GPU machine with a CUDA build of torch (README: GPU install), or device=auto")
    if requested == "auto":
        return "cuda" if cuda_available() else "cpu"
    return requested


def model_source(mcfg: ModelConfig) -> tuple[str, bool]:
    """(what from_pretrained gets, whether it is a local folder). Builds tiny-ko on first use."""
    if mcfg.name_or_path == "tiny-ko":
        from training.tiny_ko import tiny_model_dir

        return str(tiny_model_dir(mcfg.tiny)), True
    path = Path(mcfg.name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise KosovError(f"model.name_or_path={mcfg.name_or_path!r} is a folder without a config.json",
                             fix="give the folder holding the model's config.json and weights")
        return str(path), True
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


def attention_for(mcfg: ModelConfig, device: str) -> str:
    """The attention kernel: auto = FlashAttention 2 on a GPU where it can run, else SDPA."""
    if mcfg.attn_implementation != "auto":
        return mcfg.attn_implementation
    return "flash_attention_2" if device == "cuda" and flash_attention_ready() is None else "sdpa"


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


def check_attention(mcfg: ModelConfig, device: str) -> None:
    if mcfg.attn_implementation != "flash_attention_2":
        return
    if device != "cuda":
        raise KosovError("FlashAttention 2 (model.attn_implementation=flash_attention_2) needs a CUDA GPU",
                         fix="use model.attn_implementation=sdpa on CPU")
    problem = flash_attention_ready()
    if problem:
        raise KosovError(f"FlashAttention 2 was asked for (model.attn_implementation=flash_attention_2), but {problem}",
                         fix="pip install 'kosov[gpu]' --no-build-isolation (README: GPU install) on an Ampere or "
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


def load_tokenizer(mcfg: ModelConfig, source: str):
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
    if not tokenizer.chat_template:
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


def load_base_model(cfg: KosovConfig, source: str, device: str, trains_all: bool = False):
    """The base model, as the recipe asks; trains_all: every weight will train (a full fine-tune)."""
    from transformers import AutoModelForCausalLM

    mcfg = cfg.model
    kwargs: dict[str, Any] = {
        "revision": mcfg.revision,
        "dtype": torch_dtype(mcfg, device, trains_all),
        "attn_implementation": attention_for(mcfg, device),
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
    log.info("loaded %s (%s, %.1fM parameters, %s)", mcfg.name_or_path, kwargs["dtype"],
             model.num_parameters() / 1e6, kwargs["attn_implementation"])
    return model


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
    return sorted({n.split(".layers.")[-1].split(".", 1)[-1] for n, p in model.named_parameters() if p.dim() == 3})


def lora_config(pcfg: PeftConfig, model: Any):
    """The PEFT LoraConfig for lora / dora / qlora, None for a full fine-tune. Unknown targets fail clearly."""
    if pcfg.method == "none":
        return None
    from peft import LoraConfig

    targets = pcfg.target_modules
    fused = fused_experts(model)
    if targets == "all-linear" and fused and not pcfg.target_parameters:
        raise KosovError(
            f"peft.target_modules=all-linear on a model with fused expert weights ({', '.join(fused)}): PEFT would "
            "also put LoRA on the router and double the rank of the fused gate/up experts, and it refuses "
            "peft.dropout > 0 there",
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
    tied = bool(getattr(model.config, "tie_word_embeddings", False)) and bool({"embed_tokens", "lm_head"} & set(saved))
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
    )


def adapter_dir(path: str | Path) -> Path:
    """An adapter folder, given it or a run folder that holds one in adapter/."""
    path = Path(path).expanduser()
    for candidate in (path, path / "adapter"):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise KosovError(f"no LoRA adapter at {path} (no adapter_config.json there or in {path / 'adapter'})",
                     fix="give the path of an adapter folder or of the kosov run folder holding it (adapter/)")


def _template_text(path: str | Path | None) -> str | None:
    path = Path(path).expanduser() if path else None
    return path.read_text(encoding="utf-8") if path is not None and path.is_file() else None


def adapter_model_config(mcfg: ModelConfig, adapter: Path) -> ModelConfig:
    """The model settings to serve or evaluate `adapter` with. An adapter of a kosov run answers in the prompt format
    it was trained with: its run's model.chat_template and end_of_turn_token, where this recipe sets none; one this recipe
    sets differently wins, with a warning naming both."""
    run = next((f for f in (adapter.parent, adapter.parent.parent) if (f / "config.yaml").is_file()), None)
    trained = (yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}).get("model") if run else None
    if not isinstance(trained, dict):  # a bare adapter folder: nothing recorded to follow
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


def check_adapter_base(adapter: Path, source: str, name_or_path: str) -> None:
    """An adapter only means something on the base it was trained on: refuse another one before loading."""
    import json

    trained_on = json.loads((adapter / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if trained_on not in (source, name_or_path):
        run_config = adapter.parent / "config.yaml"  # the run's own name for its base (tiny-ko, not its cache path)
        named = (yaml.safe_load(run_config.read_text(encoding="utf-8")).get("model", {}).get("name_or_path")
                 if run_config.is_file() else None) or trained_on
        raise KosovError(f"the adapter {adapter} was trained on {trained_on!r}, but this recipe loads "
                         f"{name_or_path!r} ({source})",
                         fix=(f"set model.name_or_path={named} (as its run did)" if named != name_or_path else
                              f"load the base with the model settings of its run ({run_config})")
                         + ", or use an adapter trained on this base")


def load_adapter(model: Any, adapter: Path, source: str, name_or_path: str):
    """Wrap the base in a trainable PeftModel from `adapter`, after checking it was trained on this base."""
    from peft import PeftModel

    check_adapter_base(adapter, source, name_or_path)
    log.info("continuing training of the adapter %s", adapter)
    return PeftModel.from_pretrained(model, str(adapter), is_trainable=True)


def load_for_inference(cfg: KosovConfig, source: str, device: str, adapter: Path | None = None):
    """The base (+ an adapter, checked to belong to it) on `device`, in eval mode: for generation and evaluation,
    where no trainer places the model."""
    model = load_base_model(cfg, source, device)
    if getattr(model, "hf_device_map", None) is None:  # a 4-bit model is placed by from_pretrained already
        model = model.to(device)
    if adapter is not None:
        from peft import PeftModel

        check_adapter_base(adapter, source, cfg.model.name_or_path)
        model = PeftModel.from_pretrained(model, str(adapter))
    return model.eval()
