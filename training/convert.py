"""`kosov convert kormo SRC DST`: a KORMo-10B checkpoint rewritten as a plain Llama checkpoint, so it loads with
`AutoModelForCausalLM.from_pretrained` and no remote code.

    python -m training.convert kormo ~/models/KORMo-10B-sft ~/models/KORMo-10B-sft-llama
    kosov train experiment=kormo-10b-ko-sft model.name_or_path=~/models/KORMo-10B-sft-llama \
        model.trust_remote_code=false

KORMo's modeling code (the transformers PR #46427 version) subclasses every Llama class and changes only the
decoder layer: its two RMSNorms are named `pre_attention_layernorm` / `pre_mlp_layernorm` where Llama has
`input_layernorm` / `post_attention_layernorm`, applied at the same places. Its config class subclasses
LlamaConfig (the remote-code one written for transformers 4.57 takes the same keys plus an unused `mask_type`).
So: rename those two keys, write config.json with model_type "llama", drop the remote code, and the logits are
those of the KORMo model.

Weights are streamed. A safetensors file is an 8-byte header length, a JSON header (name -> dtype, shape,
data offsets relative to the end of the header) and the raw data. Each shard is rewritten as a new header
followed by the unchanged data bytes, copied in 1 MiB chunks: memory use does not grow with the model and every
tensor is bit-identical. Everything is written into a staging folder next to DST (.DST.converting-*, locked while
the conversion runs) and renamed into place; the next conversion to DST deletes what a killed one left there.
A conversion holds DST's lock (.DST.kosov.lock beside it) from before it looks at DST until DST is in place, so a
second conversion to DST started meanwhile is refused instead of replacing the first one's.
"""

from __future__ import annotations

import argparse
import copy
import glob
import hashlib
import json
import logging
import re
import shutil
import struct
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from huggingface_hub.errors import StrictDataclassError

from training.errors import KosovError
from training.run_dir import LOCK, lock_beside, lock_run_folder, release_beside
from training.safe_write import check_not_holding, swap_into_place, tidy_swap
from training.safe_write import read_json

log = logging.getLogger(__name__)

RENAMES = {"pre_attention_layernorm": "input_layernorm", "pre_mlp_layernorm": "post_attention_layernorm"}
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
RECORD = "kosov_conversion.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")  # one of them makes a usable tokenizer
# Weights are rewritten, config.json and the index regenerated; Python files are the remote code we remove.
NOT_COPIED = (".safetensors", ".bin", ".pt", ".pth", ".py", ".pyc")
# Keys of a config.json that are not LlamaConfig fields in every transformers version but mean the same thing.
GENERIC_KEYS = {"_name_or_path", "architectures", "model_type", "transformers_version", "torch_dtype", "dtype",
                "rope_theta", "rope_scaling", "auto_map"}
# Shape fields the converted config must give transformers' LlamaConfig exactly as KORMo states them.
SHAPE_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "head_dim", "rms_norm_eps", "max_position_embeddings", "tie_word_embeddings",
              "attention_bias", "mlp_bias", "hidden_act")
# Sizes the weights are built from: a checkpoint's config.json always states them, as whole numbers.
SIZE_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
REDOWNLOAD = "download this file of the checkpoint again (a download cut short, or an edit, can break it)"
CHUNK = 1 << 20
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # org/name, as _name_or_path names a Hub repo
LAYER_NORM = re.compile(r"(?:^|\.)layers\.(\d+)\.(pre_attention_layernorm|pre_mlp_layernorm)\.")


def rename_key(key: str) -> str:
    """`model.layers.3.pre_mlp_layernorm.weight` -> `model.layers.3.post_attention_layernorm.weight`."""
    return ".".join(RENAMES.get(part, part) for part in key.split("."))


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file and the byte offset where its data starts."""
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise KosovError(f"{path} is not a safetensors file (shorter than its header)")
        (length,) = struct.unpack("<Q", raw)
        if length > min(path.stat().st_size - 8, 1 << 28):
            raise KosovError(f"{path} is not a safetensors file (header length {length})")
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise KosovError(f"{path} is not a safetensors file (unreadable header: {e})") from None
    if not isinstance(header, dict):
        raise KosovError(f"{path} is not a safetensors file (its header is a JSON {type(header).__name__})",
                         fix=REDOWNLOAD)
    return header, 8 + length


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def rewrite_shard(src: Path, dst: Path) -> tuple[int, str, str]:
    """Copy a shard with its tensor names renamed. Returns (keys renamed, sha256 of src, sha256 of dst)."""
    header, data_start = read_header(src)
    renamed = {rename_key(k): v for k, v in header.items()}
    count = sum(rename_key(k) != k for k in header)
    body = json.dumps(renamed, separators=(",", ":")).encode()
    body += b" " * (-len(body) % 8)  # safetensors pads its header with spaces to keep the data 8-byte aligned
    src_hash, dst_hash = hashlib.sha256(), hashlib.sha256()
    with src.open("rb") as fin, dst.open("wb") as fout:
        src_hash.update(fin.read(data_start))
        prefix = struct.pack("<Q", len(body)) + body
        fout.write(prefix)
        dst_hash.update(prefix)
        for chunk in iter(lambda: fin.read(CHUNK), b""):
            fout.write(chunk)
            src_hash.update(chunk)
            dst_hash.update(chunk)
    return count, src_hash.hexdigest(), dst_hash.hexdigest()


def _shards(src: Path) -> tuple[list[str], dict[str, Any] | None]:
    """Shard file names and the index (None for a single model.safetensors). Missing files fail clearly."""
    if (src / INDEX).is_file():
        index = read_json(src / INDEX, REDOWNLOAD)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            state = "missing" if weight_map is None else "not a map of tensor names to shard file names"
            raise KosovError(f"weight_map is {state}", where=str(src / INDEX), fix=REDOWNLOAD)
        shards = sorted(set(weight_map.values()))
        missing = [s for s in shards if not (src / s).is_file()]
        if not shards or missing:
            raise KosovError(f"{src / INDEX} lists shards that are not in {src}: {missing or 'none listed'}",
                             fix="download the whole checkpoint (every model-*.safetensors file) into SRC")
        return shards, index
    if (src / SINGLE).is_file():
        return [SINGLE], None
    pickled = sorted(p.name for p in src.glob("*.bin"))
    raise KosovError(f"no safetensors weights in {src} (no {INDEX}, no {SINGLE})"
                     + (f"; found PyTorch pickles {pickled}, which kosov does not convert" if pickled else ""),
                     fix="point SRC at a KORMo checkpoint folder with its .safetensors shards")


def check_kormo(src: Path) -> tuple[dict[str, Any], list[str], dict[str, Any] | None]:
    """(config, shards, index) of a KORMo checkpoint, or a KosovError that says what is wrong with SRC."""
    if not src.is_dir():
        raise KosovError(f"{src} is not a folder", fix="give the folder of a downloaded KORMo checkpoint")
    if not (src / "config.json").is_file():
        raise KosovError(f"{src} has no config.json", fix="give the folder of a downloaded KORMo checkpoint")
    config = read_json(src / "config.json", REDOWNLOAD)
    if config.get("model_type") != "kormo":
        hint = " (already a Llama checkpoint: no conversion needed)" if config.get("model_type") == "llama" else ""
        raise KosovError(f"{src} is not a KORMo checkpoint: config.json has model_type="
                         f"{config.get('model_type')!r}, not 'kormo'{hint}")
    for key in SIZE_KEYS:
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise KosovError(f"{key} is {'missing' if key not in config else repr(value)}; it must be a whole "
                             "number above 0", where=str(src / "config.json"),
                             fix=f"set {key} as the model repo's config.json states it, or {REDOWNLOAD}")
    shards, index = _shards(src)
    layers: dict[str, set[int]] = {name: set() for name in RENAMES}
    llama_named = []
    for shard in shards:
        for key in read_header(src / shard)[0]:
            if match := LAYER_NORM.search(key):
                layers[match.group(2)].add(int(match.group(1)))
            elif set(key.split(".")) & set(RENAMES.values()):
                llama_named.append(key)
    if not any(layers.values()):
        raise KosovError(f"{src} says model_type 'kormo' but its weights have no pre_attention_layernorm / "
                         f"pre_mlp_layernorm keys (Llama norm names: {len(llama_named)})",
                         fix="this is not KORMo's layout; nothing to convert")
    if llama_named:
        raise KosovError(f"{src} mixes KORMo and Llama norm names ({llama_named[0]})",
                         fix="convert an unmodified KORMo checkpoint")
    expected = set(range(config["num_hidden_layers"]))
    for name, found in layers.items():
        if found != expected:
            raise KosovError(f"{src}: {name} found for layers {sorted(found)}, but config.json has "
                             f"num_hidden_layers={len(expected)}", fix="download the whole checkpoint again")
    if not any((src / name).is_file() for name in TOKENIZER_FILES):
        raise KosovError(f"{src} has no tokenizer ({' / '.join(TOKENIZER_FILES)})",
                         fix="copy the tokenizer files of KORMo-Team/KORMo-tokenizer (or of the model repo) into SRC")
    return config, shards, index


def llama_config(kormo: dict[str, Any], where: str = "config.json") -> tuple[dict[str, Any], list[str]]:
    """KORMo's config.json as a Llama one: every key carried over with its value (KORMo's keys are Llama's; the
    4.x names rope_theta / rope_scaling are read by transformers 5 too), model_type and architectures changed,
    auto_map removed. Returns it and the keys LlamaConfig does not know (kept, unused by Llama). `where`: the
    file the errors name."""
    from transformers import LlamaConfig

    out = {k: v for k, v in kormo.items() if k != "auto_map"}
    out.update(model_type="llama", architectures=["LlamaForCausalLM"])
    unknown = sorted(set(out) - set(LlamaConfig().to_dict()) - GENERIC_KEYS)
    try:
        loaded = LlamaConfig.from_dict(copy.deepcopy(out)).to_dict()  # it edits nested dicts (rope_scaling)
    except (TypeError, ValueError, KeyError, StrictDataclassError) as e:  # a value of the wrong type, a bad rope
        raise KosovError(f"does not make a valid LlamaConfig: {' '.join(str(e).split())}", where=where,
                         fix=f"correct the key it names as the model repo's config.json has it, or {REDOWNLOAD}"
                         ) from None
    for key in SHAPE_KEYS:
        if kormo.get(key) is not None and loaded.get(key) != kormo[key]:
            raise KosovError(f"{key}={kormo[key]!r} reads as {loaded.get(key)!r} in LlamaConfig", where=where)
    theta = kormo.get("rope_theta", (kormo.get("rope_parameters") or {}).get("rope_theta"))
    if theta is not None and (loaded.get("rope_parameters") or {}).get("rope_theta") != theta:
        raise KosovError(f"rope_theta={theta} is not what LlamaConfig reads", where=where)
    return out, unknown


def tokenizer_config(src: Path) -> dict[str, Any] | None:
    """SRC's tokenizer_config.json without its auto_map (the remote code's tokenizer classes, whose .py files the
    conversion drops: a loader with trust_remote_code would look for them), or None when it has none. A
    tokenizer_class only that code defines is refused: nothing would load the converted tokenizer."""
    path = src / "tokenizer_config.json"
    saved = read_json(path, REDOWNLOAD) if path.is_file() else {}
    if "auto_map" not in saved:
        return None
    name = saved.get("tokenizer_class")
    try:
        from transformers.models.auto.tokenization_auto import tokenizer_class_from_name
    except ImportError:  # a transformers that moved it: the class is left to from_pretrained
        tokenizer_class_from_name = None
    if name and tokenizer_class_from_name is not None and tokenizer_class_from_name(name) is None:
        raise KosovError(f"tokenizer_class {name!r} is defined only by the remote code (auto_map), which the "
                         "conversion drops: nothing would load the converted tokenizer", where=str(path),
                         fix="copy the tokenizer files of KORMo-Team/KORMo-tokenizer (or of the model repo) into SRC")
    return {k: v for k, v in saved.items() if k != "auto_map"}


def source_revision(src: Path) -> tuple[str | None, str | None]:
    """(repo id, commit) when SRC is a Hugging Face cache snapshot (`models--org--name/snapshots/<sha>`)."""
    resolved = src.resolve()
    if resolved.parent.name == "snapshots" and resolved.parent.parent.name.startswith("models--"):
        return resolved.parent.parent.name[len("models--"):].replace("--", "/"), resolved.name
    return None, None


def tidy_conversions(dst: Path) -> None:
    """Put right what conversions to DST killed midway left: a DST set aside by --overwrite comes back or goes
    (tidy_swap); a staging folder goes, unless a conversion still running holds its lock (lock_run_folder)."""
    tidy_swap(dst)
    for staging in sorted(dst.parent.glob(f"{glob.escape(f'.{dst.name}')}.converting-*")):
        try:
            lock = lock_run_folder(staging)
        except KosovError as e:
            log.info("kept %s: a conversion still running writes it (%s)", staging, e.what)
            continue
        if lock is None:  # no locks on this file system: a running conversion cannot be told from a killed one
            log.warning("kept %s: delete it if no conversion to %s is running", staging, dst)
            continue
        shutil.rmtree(staging, ignore_errors=True)
        lock.close()
        log.warning("removed %s: what a conversion to %s killed midway left", staging, dst)


def lock_destination(dst: Path) -> Any:
    """Hold DST's lock (run_dir.lock_beside: .DST.kosov.lock beside it) while a conversion tidies, checks and
    replaces DST: a second conversion to DST is refused while this one runs."""
    return lock_beside(dst, f"another `kosov convert` is writing {dst}",
                       "wait for it to finish, or stop it, and run this again; or convert to another DST",
                       f"nothing stops a second conversion to {dst} from replacing this one's")


def _check_not_in_source(src: Path, dst: Path) -> None:
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise KosovError(f"DST {dst} is SRC or inside it", fix="write the converted model to another folder")


def _check_destination(src: Path, dst: Path, overwrite: bool) -> None:
    """Call it holding DST's lock (lock_destination): no other conversion creates DST meanwhile."""
    _check_not_in_source(src, dst)
    if dst.exists():
        if not overwrite:
            raise KosovError(f"{dst} already exists", fix="choose a new DST, or pass --overwrite to replace it")
        check_not_holding(dst, {"SRC": src})


def _write_outputs(src: Path, staging: Path, llama: dict, shards: list[str], index: dict | None,
                   tokenizer: dict | None) -> dict:
    renamed = 0
    source_hashes, written_hashes = {}, {}  # the shards are hashed as they are copied, not read again after
    for shard in shards:
        log.info("renaming the norm keys of %s", shard)
        count, source_hashes[shard], written_hashes[shard] = rewrite_shard(src / shard, staging / shard)
        renamed += count
    if index is not None:
        index = {**index, "weight_map": {rename_key(k): v for k, v in index["weight_map"].items()}}
        (staging / INDEX).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    (staging / "config.json").write_text(json.dumps(llama, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    copied, dropped = [], []
    for path in sorted(src.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.name in ("config.json", INDEX, RECORD):
            continue
        if path.name in shards:
            continue
        if path.name.endswith(NOT_COPIED):
            dropped.append(path.name)
            continue
        if path.name == "tokenizer_config.json" and tokenizer is not None:  # without the remote code's auto_map
            (staging / path.name).write_text(json.dumps(tokenizer, indent=2, ensure_ascii=False) + "\n",
                                             encoding="utf-8")
        else:
            shutil.copy2(path, staging / path.name)
        copied.append(path.name)
    # Every file in the staging folder (its lock aside), by name; a shard's hash is the one taken as it was written
    # (nothing written after it has a shard's name: config.json and the index are not safetensors, see check_kormo).
    sha256 = {p.name: written_hashes.get(p.name) or _hash_file(p)
              for p in sorted(staging.iterdir()) if p.name != LOCK}
    return {"renamed_keys": renamed, "source_sha256": {**source_hashes, "config.json": _hash_file(src / "config.json")},
            "copied": copied, "dropped": dropped, "sha256": sha256}


def convert_kormo(src: str | Path, dst: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Convert the KORMo checkpoint in SRC into a Llama checkpoint in DST. Returns the conversion record, which
    is also written to DST/kosov_conversion.json."""
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    config, shards, index = check_kormo(src)
    llama, unknown = llama_config(config, str(src / "config.json"))  # before any shard is copied
    tokenizer = tokenizer_config(src)
    _check_not_in_source(src, dst)  # before DST's lock creates DST's folder, which may be in SRC
    destination = lock_destination(dst)  # before DST is looked at, until it is in place
    try:
        tidy_conversions(dst)
        _check_destination(src, dst, overwrite)
        record = _convert_into(src, dst, config, llama, unknown, shards, index, tokenizer)
    finally:
        release_beside(destination)
    if unknown:
        log.info("kept config keys Llama does not use: %s", unknown)
    log.info("converted %s -> %s (%d keys renamed, dropped %s)", src, dst, record["renamed_keys"],
             record["dropped_files"])
    return record


def _convert_into(src: Path, dst: Path, config: dict, llama: dict, unknown: list[str], shards: list[str],
                  index: dict | None, tokenizer: dict | None = None) -> dict[str, Any]:
    """Write the Llama checkpoint in a staging folder and swap it into DST (holding DST's lock)."""
    # Locked until DST is in place, so a conversion started meanwhile never deletes it as a killed one's.
    staging = dst.parent / f".{dst.name}.converting-{uuid.uuid4().hex[:8]}"
    lock = lock_run_folder(staging)
    try:
        done = _write_outputs(src, staging, llama, shards, index, tokenizer)
        repo, revision = source_revision(src)
        named = config.get("_name_or_path")  # a local path (a checkpoint saved on this machine) is no repo
        record = {  # SRC by its folder's name: a converted base is uploaded (publish.base_model), this record too
            "converter": "kosov convert kormo",
            "source": src.resolve().name,
            "source_repo": repo or (named if isinstance(named, str) and HUB_ID.fullmatch(named) else None),
            "source_revision": revision,
            "source_model_type": config.get("model_type"),
            "source_architectures": config.get("architectures"),
            "key_renames": RENAMES,
            "renamed_keys": done["renamed_keys"],
            "config_keys_not_in_llama": unknown,
            "dropped_files": done["dropped"],
            "tokenizer_auto_map_removed": (read_json(src / "tokenizer_config.json", REDOWNLOAD)["auto_map"]
                                           if tokenizer is not None else None),
            "copied_files": done["copied"],
            "source_sha256": done["source_sha256"],
            "sha256": done["sha256"],
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (staging / RECORD).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        swap_into_place(staging, dst)
        (dst / LOCK).unlink(missing_ok=True)  # renamed in with DST, still held: no one takes it for a leftover
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            lock.close()
    return record


def main(argv: list[str] | None = None) -> int:
    """`kosov convert kormo SRC DST [--overwrite]` (also `python -m training.convert ...`)."""
    parser = argparse.ArgumentParser(prog="kosov convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["kormo"], help="the checkpoint layout to convert from")
    parser.add_argument("src", help="the downloaded KORMo checkpoint folder")
    parser.add_argument("dst", help="where the Llama checkpoint is written (must not exist)")
    parser.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    args = parser.parse_args(argv)
    try:
        record = convert_kormo(args.src, args.dst, overwrite=args.overwrite)
    except KosovError as e:
        print(e, file=sys.stderr)
        return 2
    print(f"{args.dst}: LlamaForCausalLM, {record['renamed_keys']} norm keys renamed "
          f"(record: {Path(args.dst) / RECORD})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
