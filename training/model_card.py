"""The model card of a released adapter: Hub metadata (base_model, library_name: peft, language, license,
datasets, tags, model-index from the eval report) and a Korean and English description, usage, intended use and
limitations, the evaluation table, the training curve, the resolved recipe, provenance and data lineage (with the
teacher models behind synthetic rows).

The license is derived from the base and the data: a permissive base trained on permissively licensed rows keeps
the base's license. Rows under a license kosov cannot combine (GPL, No-Derivatives, proprietary, unknown) stop the
release until `publish.license` says what it is, whatever else the data holds. Rows under a non-commercial license
make it that license when it is one the Hub knows (cc-by-nc-4.0, cc-by-nc-sa-4.0...), else "other" with a
LICENSE.md listing the data's licenses. ShareAlike rows (cc-by-sa) ask that adapted material keep their license:
the publisher chooses (`publish.license`), kosov does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from training.errors import KosovError

# Bases whose license kosov has checked (KOREAN.md). Only Qwen3 under Qwen/: some Qwen2.5 and Qwen1.5 models carry
# the qwen, qwen-research or tongyi-qianwen licenses, so other Qwen bases need publish.license.
BASE_LICENSES = {"Qwen/Qwen3-": "apache-2.0", "KORMo-Team/": "apache-2.0", "tiny-ko": "apache-2.0"}
COMMERCIAL_OK = {"apache-2.0", "mit", "bsd-3-clause", "bsd-2-clause", "cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0"}
# The Hub's license ids (huggingface.co/docs/hub/repositories-licenses) of the non-commercial licenses a card can
# name as they are: NC data under one of them makes it the adapter's license. The -nd ones are refused (no
# adaptations may be shared), whatever else the data holds.
HUB_NONCOMMERCIAL = {"cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0",
                     "cc-by-nc-sa-4.0"}
LICENSE_FILE = "LICENSE.md"  # the release's license text when the card's license is "other" (its license_link)


def base_license(name_or_path: str) -> str | None:
    return next((lic for prefix, lic in BASE_LICENSES.items() if name_or_path.startswith(prefix)), None)


def _parts(license_: str) -> list[str]:
    return license_.lower().split("-")


def is_noncommercial(license_: str) -> bool:
    return "nc" in _parts(license_)


def is_sharealike(license_: str) -> bool:
    return "sa" in _parts(license_)


def combinable(license_: str) -> bool:
    """Whether kosov derives a license from rows under `license_`: commercial-use licenses it knows and
    non-commercial ones, never No-Derivatives; copyleft, proprietary or unknown terms are left to the publisher."""
    return "nd" not in _parts(license_) and (is_noncommercial(license_) or license_.lower() in COMMERCIAL_OK)


def _counts(licenses: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(licenses.items())) or "no data"


def _lowered(data_licenses: dict[str, int]) -> dict[str, int]:
    licenses: dict[str, int] = {}
    for name, count in data_licenses.items():  # "Apache-2.0" and "apache-2.0" are one license
        licenses[name.lower()] = licenses.get(name.lower(), 0) + count
    return licenses


def _derived(base: str, data_licenses: dict[str, int]) -> tuple[str, str]:
    """The license kosov derives from the base and the data alone (no publish.license), with why."""
    license_ = base_license(base)
    if license_ is None:
        raise KosovError(f"kosov does not know the license of the base {base!r}",
                         fix="check the base model's license and set publish.license=<SPDX id>")
    licenses = _lowered(data_licenses)
    unknown = {k: v for k, v in licenses.items() if k in ("unknown", "none", "")}
    if unknown:
        raise KosovError(f"{sum(unknown.values())} training rows carry no license",
                         fix="record licenses in the rows' meta, or check them and set publish.license explicitly")
    # Before the non-commercial rule: one NC row must not let GPL, No-Derivatives or proprietary rows through.
    blocked = {k: v for k, v in licenses.items() if not combinable(k)}
    if blocked:
        raise KosovError(f"cannot combine the data licenses {_counts(blocked)} (rows) with the base's {license_}: "
                         "kosov does not pick a license for an adapter trained on them (copyleft, No-Derivatives "
                         "or other terms)",
                         fix="leave those rows out of the data, or check their terms and set publish.license=<id> "
                             "explicitly")
    noncommercial = {k: v for k, v in licenses.items() if is_noncommercial(k)}
    if len(noncommercial) == 1 and next(iter(noncommercial)) in HUB_NONCOMMERCIAL:
        derived, why = next(iter(noncommercial)), (f"non-commercial: {_counts(noncommercial)} of "
                                                   f"{sum(licenses.values())} training rows; all rows: "
                                                   f"{_counts(licenses)}")
    elif noncommercial:
        derived, why = "other", (f"non-commercial: trained on rows licensed {_counts(licenses)}, which no single "
                                 "license id covers")
    else:
        derived, why = license_, f"the base's license; every training row is under {sorted(licenses) or ['no data']}"
    sharealike = {k: v for k, v in licenses.items() if is_sharealike(k)}
    if sharealike and set(sharealike) != {derived}:
        raise KosovError(f"{sum(sharealike.values())} training rows are under a ShareAlike license "
                         f"({_counts(sharealike)}), which asks that material adapted from them be shared under the "
                         f"same license; kosov would derive {derived} (all rows: {_counts(licenses)}), and whether "
                         "ShareAlike reaches model weights is a legal question it does not decide",
                         fix=f"choose the adapter's license: publish.license={sorted(sharealike)[0]} shares it "
                             "under the data's terms; another id (e.g. publish.license="
                             f"{derived if derived != 'other' else license_}) only after checking that those terms "
                             "allow it; or leave those rows out")
    return derived, why


def derive_license(base: str, data_licenses: dict[str, int], override: str | None) -> tuple[str, str]:
    """(license id, one sentence saying why). Raises KosovError when it cannot be decided safely."""
    if not override:
        return _derived(base, data_licenses)
    rows = _counts(_lowered(data_licenses))
    try:
        derived = _derived(base, data_licenses)[0]
    except KosovError:
        return override.lower(), f"set by the publisher (publish.license); training rows: {rows}"
    if derived == override.lower():
        return derived, f"set by the publisher (publish.license), as kosov derives it; training rows: {rows}"
    return override.lower(), (f"set by the publisher (publish.license), overriding `{derived}`, which kosov derives "
                               f"from the base and the training rows ({rows})")


def license_warnings(base: str, data_licenses: dict[str, int], override: str | None) -> list[str]:
    """What a publisher should hear about the release's license: non-commercial or ShareAlike rows, and a
    publish.license that overrides the license kosov derives (each naming the licenses and row counts)."""
    licenses = _lowered(data_licenses)
    noncommercial = {k: v for k, v in licenses.items() if is_noncommercial(k)}
    sharealike = {k: v for k, v in licenses.items() if is_sharealike(k)}
    license_ = override.lower() if override else None
    try:
        derived = _derived(base, data_licenses)[0]
    except KosovError:  # what kosov would refuse: the publisher's license decides, with nothing to compare
        derived = None
    warnings = []
    if noncommercial:
        warnings.append(f"{sum(noncommercial.values())} training rows are under a non-commercial license "
                        f"({_counts(noncommercial)}): the adapter, and any model merged with it, may not be used "
                        "commercially" + (f"; publish.license={override} releases it under {license_}, which does "
                                          "not say so: check that the data's terms allow it"
                                          if license_ and not is_noncommercial(license_) else ""))
    if sharealike:
        warnings.append(f"{sum(sharealike.values())} training rows are under a ShareAlike license "
                        f"({_counts(sharealike)}): their terms ask that adapted material be shared under the same "
                        "license" + (f"; the release is {license_} (publish.license)" if license_ else ""))
    if override and derived is not None and derived != license_:
        warnings.append(f"publish.license={override} overrides {derived}, which kosov derives from the base "
                        f"({base_license(base)}) and the training rows ({_counts(licenses)}); the card says so")
    return warnings


def license_file(base: str, data_licenses: dict[str, int], by_publisher: bool = False) -> str:
    """LICENSE.md of a release whose card says `license: other` (its license_link): the licenses of the training
    rows with their counts, and the base's."""
    licenses = _lowered(data_licenses)
    noncommercial = {k: v for k, v in licenses.items() if is_noncommercial(k)}
    known = base_license(base)
    why = ("The publisher set its model card's license to `other` (publish.license)." if by_publisher else
           "No single license id on the Hugging Face Hub covers them, so its model card says `license: other`.")
    lines = ["# License", "",
             f"This LoRA adapter of `{base}` was trained by kosov on rows under the licenses below. {why} The terms "
             "of each license below apply to the adapter and to any model merged with it.", "",
             "## Training data", "", "| license | rows |", "|---|---|",
             *[f"| {k} | {v} |" for k, v in sorted(licenses.items())], ""]
    if noncommercial:
        lines += [f"{sum(noncommercial.values())} of {sum(licenses.values())} rows are under a non-commercial "
                  f"license ({', '.join(sorted(noncommercial))}): the adapter, and any model merged with it, may "
                  "not be used commercially.", ""]
    lines += ["## Base model", "",
              f"`{base}`: " + (f"{known}." if known else "see its own model card (a license kosov has not checked)."),
              ""]
    return "\n".join(lines)


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


def _teachers(data: dict[str, Any]) -> str:
    """The teacher models that wrote the stage's synthetic rows (meta.teacher_model), with their rows; runs trained
    before kosov summarised them did not record them."""
    if "teacher_models" not in data:
        return "not recorded"
    return _counts(data["teacher_models"]) if data["teacher_models"] else "none"


def _lineage(stages: list[dict[str, Any]]) -> list[str]:
    lines = ["| stage | dataset | source | rows | licenses | teacher models |", "|---|---|---|---|---|---|"]
    for stage in stages:
        data = stage["provenance"].get("data", {})
        sources = ", ".join(_source_text(s) for s in data.get("sources", []))
        licenses = ", ".join(f"{k}: {v}" for k, v in data.get("licenses", {}).items())
        lines.append(f"| {stage['name']} | {data.get('name', '?')} | {sources} | {data.get('train_rows', '?')} | "
                     f"{licenses} | {_teachers(data)} |")
    return lines


def _located(stages: list[dict[str, Any]]) -> list[str]:
    """How the adapter a stage started from was found where not at the path it recorded (training.lineage): given by
    the publisher (publish.start_adapter), or a chained run's own SFT stage found in its folder."""
    notes = [f"- {earlier['name']}, the adapter {later['name']} started from: {earlier['located']}."
             for earlier, later in zip(stages, stages[1:]) if earlier.get("located")]
    return ["Where a stage's adapter was found other than at the path its next stage recorded:", "", *notes, ""] \
        if notes else []


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


def _load_args(model: dict[str, Any], base: str) -> str:
    """The base's pinned revision and remote-code switch as the recipe loaded it, for the usage snippets: the commit
    the run loaded (model.loaded_revision) where the recipe pinned none, so a user loads the weights the adapter was
    trained on after the base's main moves; not for a base the card names otherwise (publish.base_model)."""
    revision = model.get("revision") or (model.get("loaded_revision") if base == model.get("name_or_path") else None)
    args = f', revision="{revision}"' if revision else ""
    return args + (", trust_remote_code=True" if model.get("trust_remote_code") else "")


def vllm_refuses(adapter_config: dict[str, Any]) -> str | None:
    """Why vLLM cannot serve the adapter as a LoRA (vllm/lora/peft_helper.py refuses it at load), or None."""
    if adapter_config.get("use_dora"):
        return "vLLM does not serve DoRA adapters (it refuses use_dora)"
    if adapter_config.get("modules_to_save"):
        return "vLLM does not serve adapters with modules_to_save"
    return None


def _vllm_usage(repo: str, base: str, load: str, max_lora_rank: int | None, adapter_config: dict[str, Any]
                ) -> list[str]:
    refused = vllm_refuses(adapter_config)
    if refused:
        return [f"{refused}: merge it into the base (`kosov publish ... publish.merge=true`) and serve the merged "
                "model instead."]
    # vLLM's max_lora_rank defaults to 16 and refuses a larger adapter ("LoRA rank 32 is greater than max_lora_rank")
    rank = f", max_lora_rank={max_lora_rank}" if max_lora_rank else ""
    return ["With vLLM (LoRA):", "", "```python", "from vllm import LLM, SamplingParams",
            "from vllm.lora.request import LoRARequest", "",
            f'llm = LLM(model="{base}"{load}, enable_lora=True{rank})',
            'out = llm.chat([{"role": "user", "content": "한국의 수도는 어디인가요?"}], SamplingParams(max_tokens=256),',
            f'               lora_request=LoRARequest("kosov", 1, "{repo}"))', "```"]


def _usage(repo: str, base: str, model: dict[str, Any], max_lora_rank: int | None = None,
           adapter_config: dict[str, Any] | None = None) -> list[str]:
    load = _load_args(model, base)
    return [
        "```python", "from peft import PeftModel", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
        f'base = AutoModelForCausalLM.from_pretrained("{base}"{load}, dtype="auto", device_map="auto")',
        f'model = PeftModel.from_pretrained(base, "{repo}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{repo}")',
        'messages = [{"role": "user", "content": "한국의 수도는 어디인가요?"}]',
        "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\",",
        "                                       return_dict=True).to(model.device)",
        "print(tokenizer.decode(model.generate(**inputs, max_new_tokens=256)[0], skip_special_tokens=True))",
        "```", "", *_vllm_usage(repo, base, load, max_lora_rank, adapter_config or {})]


def _intended_use(base: str, method: str, report: dict[str, Any] | None, license_: str) -> list[str]:
    """What the adapter is for and what is known of it: the benchmarks it was scored on, and nothing more."""
    tasks = list(dict.fromkeys(r["task"] for r in (report or {}).get("rows", []) if r.get("adapted") is not None))
    evaluated = (f"- Evaluated only on {', '.join(tasks)} (see Evaluation): its quality on other tasks, domains or "
                 "languages was not measured." if tasks else
                 "- No evaluation was published with it (`publish.eval_report`): its quality was not measured.")
    return ["## Intended use and limitations", "",
            f"- Korean chat and text generation with `{base}`: the adapter adapts that base to Korean "
            f"({method.upper()}); it is not a model on its own.", evaluated,
            f"- It inherits the base model's limitations and biases (see the card of `{base}`) and can produce "
            "wrong, outdated or harmful text.",
            f"- Its use is bound by the release's license (`{license_}`), the base's license and the licenses of its "
            "training data (see Data lineage).", ""]


def model_card(*, repo: str, base: str, method: str, config: dict[str, Any], stages: list[dict[str, Any]],
               metrics: dict[str, Any], report: dict[str, Any] | None, report_md: str | None, license_: str,
               license_why: str, images: dict[str, str], max_lora_rank: int | None = None,
               adapter_config: dict[str, Any] | None = None) -> str:
    """The card's full text (YAML front matter + Markdown). `max_lora_rank`: what vLLM must be started with for the
    adapter (data_tools.teachers.vllm_max_lora_rank); `adapter_config`: its adapter_config.json (DoRA: no vLLM
    snippet); a card whose license is "other" links LICENSE.md (license_file), which the release must hold."""
    from huggingface_hub import EvalResult, ModelCardData

    settings = (report or {}).get("settings", {})
    subset = settings.get("limit") is not None  # eval.limit: not the benchmarks' scores
    limited = {name for name, own in settings.get("kosov_evals", {}).items() if own.get("limit") is not None}

    def whole(row: dict[str, Any]) -> bool:  # scored on a whole benchmark or held-out split, not a subset of it
        return not (subset if row.get("kind", "lm-eval") == "lm-eval" else row["task"].split("[")[0] in limited)

    results = [EvalResult(task_type="text-generation", dataset_type=r["task"], dataset_name=r["task"],
                          metric_type=r["metric"], metric_value=r["adapted"], metric_name=r["metric"])
               for r in (report or {}).get("rows", []) if r.get("adapted") is not None and whole(r)]
    noncommercial = any(is_noncommercial(k) for st in stages for k in st["provenance"].get("data", {}).get(
        "licenses", {}))
    data = ModelCardData(base_model=base, library_name="peft", language=["ko"], license=license_,
                         license_name=(("kosov-noncommercial" if noncommercial else "kosov-data-licenses")
                                       if license_ == "other" else None),
                         license_link=LICENSE_FILE if license_ == "other" else None,
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
        "## Usage", "", *_usage(repo, base, config.get("model", {}), max_lora_rank, adapter_config), "",
        *_intended_use(base, method, report, license_),
        "## Evaluation", "", report_md or "No evaluation report was given (`publish.eval_report`).", "",
        *(["Scores on a subset (a limit on the examples or prompts) are left out of the card's model-index "
           "metadata.", ""] if subset or limited else []),
        *([f"![evaluation]({images['report']})", ""] if "report" in images else []),
        "## Training", "",
        f"- method: {method}; steps: {metrics.get('global_step')}; tokens seen: {metrics.get('tokens_seen')}",
        f"- train loss: {metrics.get('first_train_loss')} → {metrics.get('last_train_loss')}; "
        f"eval loss: {metrics.get('first_eval_loss')} → {metrics.get('eval_loss')}", "", curve, "",
        "## Data lineage", "", *_lineage(stages), "", *_located(stages),
        f"License: `{license_}` ({license_why})." + (f" Its terms: [{LICENSE_FILE}]({LICENSE_FILE})."
                                                     if license_ == "other" else ""), "",
        *_attribution(stages),
        "## Provenance", "",
        *[f"- {st['name']}: git {st['provenance'].get('git_sha')}, started {st['provenance'].get('started')}, seed "
          f"{st['provenance'].get('seed')}, GPU {(st['provenance'].get('gpu') or {}).get('name', 'none')}" for st in stages],
        "", "Package versions: " + ", ".join(f"{k} {v}" for k, v in stages[-1]["provenance"].get("packages", {}).items()),
        "", "## Recipe", "", "The resolved kosov recipe (secrets redacted), also in `kosov_recipe.yaml`:", "",
        "```yaml", yaml.safe_dump(config, allow_unicode=True, sort_keys=False).rstrip(), "```", "",
    ]
    return "\n".join(lines)


def front_matter_error(card: Path) -> str | None:
    """Why the model card's YAML metadata (between its first two '---' lines) does not read as a mapping, or None:
    the Hub refuses a commit whose README.md metadata does not parse."""
    text = card.read_text(encoding="utf-8-sig").replace("\r\n", "\n")  # saved by an editor on Windows
    if not text.startswith("---\n") or "\n---\n" not in text[3:]:
        return "it does not start with its metadata between two '---' lines"
    try:
        meta = yaml.safe_load(text[4:text.index("\n---\n", 3)])
    except yaml.YAMLError as e:
        return f"its metadata is not YAML ({e})"
    return None if isinstance(meta, dict) else "its metadata is not a mapping of keys to values"
