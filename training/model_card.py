"""The model card of a released adapter: Hub metadata (base_model, library_name: peft, language, license,
datasets, tags, model-index from the eval report) and a Korean and English description, usage, the evaluation
table, the training curve, the resolved recipe, provenance and data lineage.

The license is derived from the base and the data: a permissive base trained on permissively licensed rows keeps
the base's license; rows under a non-commercial license make it "other" (non-commercial), and rows of unknown
license stop the release until `publish.license` says what it is.
"""

from __future__ import annotations

from typing import Any

import yaml

from training.errors import KosovError

# Bases whose license kosov has checked (KOREAN.md). Only Qwen3 under Qwen/: some Qwen2.5 and Qwen1.5 models carry
# the qwen, qwen-research or tongyi-qianwen licenses, so other Qwen bases need publish.license.
BASE_LICENSES = {"Qwen/Qwen3-": "apache-2.0", "KORMo-Team/": "apache-2.0", "tiny-ko": "apache-2.0"}
COMMERCIAL_OK = {"apache-2.0", "mit", "bsd-3-clause", "bsd-2-clause", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0"}


def base_license(name_or_path: str) -> str | None:
    return next((lic for prefix, lic in BASE_LICENSES.items() if name_or_path.startswith(prefix)), None)


def derive_license(base: str, data_licenses: dict[str, int], override: str | None) -> tuple[str, str]:
    """(license id, one sentence saying why). Raises KosovError when it cannot be decided safely."""
    if override:
        return override.lower(), "set by the publisher (publish.license)"
    license_ = base_license(base)
    if license_ is None:
        raise KosovError(f"kosov does not know the license of the base {base!r}",
                         fix="check the base model's license and set publish.license=<SPDX id>")
    licenses = {k.lower(): v for k, v in data_licenses.items()}
    unknown = {k: v for k, v in licenses.items() if k in ("unknown", "none", "")}
    if unknown:
        raise KosovError(f"{sum(unknown.values())} training rows carry no license",
                         fix="record licenses in the rows' meta, or check them and set publish.license explicitly")
    if any("nc" in k.split("-") for k in licenses):
        return "other", f"non-commercial: trained on rows licensed {sorted(licenses)}"
    if all(k in COMMERCIAL_OK for k in licenses):
        return license_, f"the base's license; every training row is under {sorted(licenses) or ['no data']}"
    raise KosovError(f"cannot combine the data licenses {sorted(licenses)} with the base's {license_}",
                     fix="check them and set publish.license explicitly")


def _source_text(source: dict[str, Any]) -> str:
    """A data source as the card shows it: a file by name and hash, a Hub dataset by id and revision, a local
    dataset folder by name; each with what pins its content."""
    if not source.get("hub_id"):
        return source.get("path", "?").rsplit("/", 1)[-1] + f" (sha256 {source.get('sha256', '?')[:12]}…)"
    pins = [f"revision {source['revision']}" if source.get("revision") else "",
            f"fingerprint {source['fingerprint'][:12]}…" if source.get("fingerprint") else ""]
    name = (source["hub_id"].rstrip("/").rsplit("/", 1)[-1] + ", local dataset folder" if is_local(source)
            else source["hub_id"])
    return f"{name} ({'; '.join(p for p in pins if p) or 'unpinned'})"


def is_local(source: dict[str, Any]) -> bool:
    """A data.hub_id that named a local dataset folder (recorded since 2026-11; older runs: a path-like id)."""
    hub_id = source.get("hub_id") or ""
    return bool(source.get("local")) or hub_id.startswith(("/", ".", "~")) or "/" not in hub_id


def hub_datasets(stages: list[dict[str, Any]]) -> list[str]:
    """The Hub datasets the card's front matter links (the Hub shows them as the model's training data)."""
    return sorted({s["hub_id"] for st in stages for s in st["provenance"].get("data", {}).get("sources", [])
                   if s.get("hub_id") and not is_local(s)})


def _lineage(stages: list[dict[str, Any]]) -> list[str]:
    lines = ["| stage | dataset | source | rows | licenses |", "|---|---|---|---|---|"]
    for stage in stages:
        data = stage["provenance"].get("data", {})
        sources = ", ".join(_source_text(s) for s in data.get("sources", []))
        licenses = ", ".join(f"{k}: {v}" for k, v in data.get("licenses", {}).items())
        lines.append(f"| {stage['name']} | {data.get('name', '?')} | {sources} | {data.get('train_rows', '?')} | "
                     f"{licenses} |")
    return lines


def _attribution(stages: list[dict[str, Any]]) -> list[str]:
    """The card's credit for training rows under a Creative Commons Attribution license (CC BY, BY-SA, BY-NC...):
    those licenses require whoever shares material adapted from the data to credit its creators."""
    rows: dict[tuple[str, str], int] = {}
    for stage in stages:
        data = stage["provenance"].get("data", {})
        for license_, count in data.get("licenses", {}).items():
            if not license_.lower().startswith("cc-by"):
                continue
            # meta.source of the rows, recorded since 2026-11-26; before, the stage's data files or datasets
            recorded = (data.get("license_sources") or {}).get(license_) or {
                ", ".join(_source_text(s) for s in data.get("sources", [])) or data.get("name", "?"): count}
            for source, n in recorded.items():
                rows[(license_, source)] = rows.get((license_, source), 0) + n
    if not rows:
        return []
    licenses = sorted({license_.lower() for license_, _ in rows})
    lines = ["## Attribution", "",
             f"Part of the training data is licensed {', '.join(licenses)}. These licenses require credit to the "
             "data's creators when material adapted from it is shared: keep this section when you redistribute the "
             "adapter or a model merged with it.", "",
             "| license | source | rows |", "|---|---|---|",
             *[f"| {license_} | {source} | {n} |" for (license_, source), n in sorted(rows.items())], ""]
    if any("-sa" in license_ for license_ in licenses):
        lines += ["ShareAlike (BY-SA) data also asks that adaptations be shared under the same license. Whether that "
                  "reaches model weights is a legal question kosov does not decide: check it before you relicense.",
                  ""]
    return lines


def _load_args(model: dict[str, Any]) -> str:
    """The base's pinned revision and remote-code switch as the recipe loaded it, for the usage snippets."""
    args = f', revision="{model["revision"]}"' if model.get("revision") else ""
    return args + (", trust_remote_code=True" if model.get("trust_remote_code") else "")


def _usage(repo: str, base: str, model: dict[str, Any]) -> list[str]:
    load = _load_args(model)
    return [
        "```python", "from peft import PeftModel", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
        f'base = AutoModelForCausalLM.from_pretrained("{base}"{load}, dtype="auto", device_map="auto")',
        f'model = PeftModel.from_pretrained(base, "{repo}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{repo}")',
        'messages = [{"role": "user", "content": "한국의 수도는 어디인가요?"}]',
        "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\",",
        "                                       return_dict=True).to(model.device)",
        "print(tokenizer.decode(model.generate(**inputs, max_new_tokens=256)[0], skip_special_tokens=True))",
        "```", "", "With vLLM (LoRA):", "", "```python", "from vllm import LLM, SamplingParams",
        "from vllm.lora.request import LoRARequest", "",
        f'llm = LLM(model="{base}"{load}, enable_lora=True)',
        'out = llm.chat([{"role": "user", "content": "한국의 수도는 어디인가요?"}], SamplingParams(max_tokens=256),',
        f'               lora_request=LoRARequest("kosov", 1, "{repo}"))', "```"]


def model_card(*, repo: str, base: str, method: str, config: dict[str, Any], stages: list[dict[str, Any]],
               metrics: dict[str, Any], report: dict[str, Any] | None, report_md: str | None, license_: str,
               license_why: str, images: dict[str, str]) -> str:
    """The card's full text (YAML front matter + Markdown)."""
    from huggingface_hub import EvalResult, ModelCardData

    settings = (report or {}).get("settings", {})
    subset = settings.get("limit") is not None  # eval.limit: not the benchmarks' scores
    limited = {name for name, own in settings.get("kosov_evals", {}).items() if own.get("limit") is not None}

    def whole(row: dict[str, Any]) -> bool:  # scored on a whole benchmark or held-out split, not a subset of it
        return not (subset if row.get("kind", "lm-eval") == "lm-eval" else row["task"].split("[")[0] in limited)

    results = [EvalResult(task_type="text-generation", dataset_type=r["task"], dataset_name=r["task"],
                          metric_type=r["metric"], metric_value=r["adapted"], metric_name=r["metric"])
               for r in (report or {}).get("rows", []) if r.get("adapted") is not None and whole(r)]
    data = ModelCardData(base_model=base, library_name="peft", language=["ko"], license=license_,
                         license_name="kosov-noncommercial" if license_ == "other" else None,
                         datasets=hub_datasets(stages) or None, pipeline_tag="text-generation",
                         tags=["kosov", "korean", "lora", "peft", method, "trl"], model_name=repo,
                         eval_results=results or None)
    curve = f"![training curve]({images['curve']})" if "curve" in images else ""
    lines = [
        "---", data.to_yaml(), "---", "", f"# {repo}", "",
        f"**한국어.** `{base}`를 한국어에 맞게 적응시킨 LoRA 어댑터입니다. kosov로 {method.upper()} 방식으로 학습했으며, "
        "아래에 평가 결과, 학습 데이터의 출처와 라이선스, 학습 설정을 모두 밝혀 두었습니다.", "",
        f"**English.** A LoRA adapter adapting `{base}` to Korean, trained with {method.upper()} by kosov. The card "
        "below gives the evaluation, the training data with its sources and licenses, and the full recipe.", "",
        "## Usage", "", *_usage(repo, base, config.get("model", {})), "",
        "## Evaluation", "", report_md or "No evaluation report was given (`publish.eval_report`).", "",
        *(["Scores on a subset (a limit on the examples or prompts) are left out of the card's model-index "
           "metadata.", ""] if subset or limited else []),
        *([f"![evaluation]({images['report']})", ""] if "report" in images else []),
        "## Training", "",
        f"- method: {method}; steps: {metrics.get('global_step')}; tokens seen: {metrics.get('tokens_seen')}",
        f"- train loss: {metrics.get('first_train_loss')} → {metrics.get('last_train_loss')}; "
        f"eval loss: {metrics.get('first_eval_loss')} → {metrics.get('eval_loss')}", "", curve, "",
        "## Data lineage", "", *_lineage(stages), "",
        f"License: `{license_}` ({license_why}).", "",
        *_attribution(stages),
        "## Provenance", "",
        *[f"- {st['name']}: git {st['provenance'].get('git_sha')}, started {st['provenance'].get('started')}, seed "
          f"{st['provenance'].get('seed')}, GPU {(st['provenance'].get('gpu') or {}).get('name', 'none')}" for st in stages],
        "", "Package versions: " + ", ".join(f"{k} {v}" for k, v in stages[-1]["provenance"].get("packages", {}).items()),
        "", "## Recipe", "", "The resolved kosov recipe (secrets redacted), also in `kosov_recipe.yaml`:", "",
        "```yaml", yaml.safe_dump(config, allow_unicode=True, sort_keys=False).rstrip(), "```", "",
    ]
    return "\n".join(lines)
