"""How well a base model's tokenizer handles Korean: fertility, byte pieces and unknown tokens.

    python -m training.tokenizer_stats                      # tiny-ko, Qwen3 and KORMo on the repo's corpus
    python -m training.tokenizer_stats --tokenizer qwen3=Qwen/Qwen3-0.6B --tokenizer mine=/models/mine \\
        --out runs/tokenizer-stats                          # prints the table, writes tokenizer_stats.{json,md}

A source that cannot be loaded (offline, a missing folder) becomes a row marked unavailable with the reason. A folder
is read from disk alone; a hub id is asked of the hub only when it answers (else read from the local cache), so a
machine without a network gets the report at once, without the hub's retries.

Every number is counted on NFC text, each text encoded on its own without special tokens:

- characters: code points that are not whitespace (spaces are what eojeol count); eojeol: `text.split()`.
- tokens_per_char = tokens / characters; tokens_per_eojeol = tokens / eojeol.
- byte piece: a token whose raw bytes are not complete UTF-8 characters on their own. The raw bytes come from
  the vocabulary, never from decoding the text: byte-level BPE (GPT-2, Qwen, Llama 3) maps each token string
  back through GPT-2's byte table; SentencePiece byte fallback spells a byte as `<0xEA>` (only when the tokenizer
  has byte fallback on: tokenizer.json's model.byte_fallback, or the SentencePiece model's trainer spec).
  byte_fallback_rate = byte pieces / tokens.
- a Hangul syllable (U+AC00-U+D7A3) is whole when its bytes all sit in one token (alone or inside a longer
  token) and in byte pieces when they are spread over several tokens ("가" as ["ê", "°Ģ"] or
  ["<0xEA>", "<0xB0>", "<0x80>"]). hangul_syllables_in_byte_pieces_share = those / Hangul syllables.
- unk_rate = tokens equal to the tokenizer's unknown token / tokens.

    >>> from training.tiny_ko import load_tiny_tokenizer
    >>> stats = korean_fertility(load_tiny_tokenizer(), ["안녕하세요 반갑습니다"])
    >>> stats["characters"], stats["hangul_syllables"], stats["eojeol"], stats["unk_rate"]
    (10, 10, 2, 0.0)
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections import Counter
from pathlib import Path

from data_tools.text import nfc
from training.safe_write import write_atomic

log = logging.getLogger("kosov")

DEFAULT_SOURCES: dict[str, str | None] = {
    "tiny-ko": str(Path(__file__).parent / "assets" / "tiny_ko_tokenizer"),
    "qwen3": "Qwen/Qwen3-0.6B",  # every Qwen3 size shares this tokenizer (vocab 151936, byte-level BPE)
    "kormo": "KORMo-Team/KORMo-tokenizer",
}
SENTENCEPIECE_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
COLUMNS = [  # (title, key, format) of the markdown table
    ("vocab", "vocab_size", "{:,}"),
    ("bytes", "byte_mode", "{}"),
    ("tokens/char", "tokens_per_char", "{:.3f}"),
    ("tokens/eojeol", "tokens_per_eojeol", "{:.2f}"),
    ("byte-fallback rate", "byte_fallback_rate", "{:.2%}"),
    ("Hangul whole", "hangul_syllables_whole_share", "{:.2%}"),  # a tokenizer that splits syllables into jamo
    ("Hangul in byte pieces", "hangul_syllables_in_byte_pieces_share", "{:.2%}"),  # (NFD) has neither
    ("unk rate", "unk_rate", "{:.2%}"),
]


def is_hangul_syllable(ch: str) -> bool:
    return 0xAC00 <= ord(ch) <= 0xD7A3


def byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte table, read backwards: the character that stands for each byte in a token string -> the byte.

    Printable Latin-1 bytes stand for themselves; the 68 others (controls, space, NBSP, soft hyphen) take
    U+0100 onwards in byte order, so every token string is printable: "Ġ" is a space, "Ċ" a newline.
    """
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    alphabet, moved = {}, 0
    for byte in range(256):
        if byte in printable:
            alphabet[chr(byte)] = byte
        else:
            alphabet[chr(0x100 + moved)] = byte
            moved += 1
    return alphabet


def byte_mode(tokenizer) -> str:
    """How the tokenizer writes text it has no piece for: "byte-level" (every token is bytes, GPT-2 style),
    "byte-fallback" (SentencePiece with byte fallback on: <0x..> tokens) or "none" (an unknown token, or characters
    only). Byte fallback is read from the tokenizer's own setting, never guessed from the vocabulary: a SentencePiece
    model trained without it may still list <0x..> pieces, and then writes an unknown syllable as <unk>."""
    backend = getattr(tokenizer, "backend_tokenizer", None)  # a fast tokenizer (TokenizersBackend in 5.x)
    if backend is not None:
        spec = json.loads(backend.to_str())
        # The decoder is what turns token strings back into text, so it says how to read them.
        if '"ByteLevel"' in json.dumps([spec.get("decoder"), spec.get("pre_tokenizer")]):
            return "byte-level"
        fallback = (spec.get("model") or {}).get("byte_fallback")  # tokenizer.json's model.byte_fallback (BPE, Unigram)
    elif hasattr(tokenizer, "byte_decoder"):  # a slow GPT-2-style tokenizer
        return "byte-level"
    elif hasattr(tokenizer, "sp_model"):  # a slow SentencePiece tokenizer: its model's trainer spec says
        from transformers.convert_slow_tokenizer import import_protobuf

        proto = import_protobuf().ModelProto.FromString(tokenizer.sp_model.serialized_model_proto())
        fallback = proto.trainer_spec.byte_fallback
    else:
        fallback = False
    return "byte-fallback" if fallback else "none"


def token_bytes(token: str, mode: str, alphabet: dict[str, int]) -> tuple[bytes, bool]:
    """The raw bytes one token stands for, and whether it is a byte piece (not whole characters on its own)."""
    match = SENTENCEPIECE_BYTE.fullmatch(token) if mode == "byte-fallback" else None
    if match:
        raw = bytes([int(match.group(1), 16)])
    elif mode == "byte-level" and all(ch in alphabet for ch in token):
        raw = bytes(alphabet[ch] for ch in token)
    else:  # a text piece, or a token added as plain text (<think>, "▁안녕"): whole characters by construction
        return token.encode("utf-8"), False
    try:
        raw.decode("utf-8")  # strict: <0x0A> is a whole newline, <0xEA> or "ê" only the start of a syllable
    except UnicodeDecodeError:
        return raw, True
    return raw, False


def utf8_width(lead: int) -> int:
    """Bytes in the UTF-8 character that starts with this byte (1 for a stray continuation byte)."""
    return 2 if 0xC0 <= lead < 0xE0 else 3 if 0xE0 <= lead < 0xF0 else 4 if 0xF0 <= lead < 0xF8 else 1


def hangul_whole_and_split(pieces: list[bytes]) -> tuple[list[str], list[str]]:
    """Hangul syllables of one encoded text: (whole: all bytes in one token, split: bytes over several tokens).

    Walks the tokens' bytes character by character, remembering which token each byte came from.
    """
    owners = [(byte, index) for index, raw in enumerate(pieces) for byte in raw]
    whole, split, pos = [], [], 0
    while pos < len(owners):
        chunk = owners[pos : pos + utf8_width(owners[pos][0])]
        try:
            ch = bytes(byte for byte, _ in chunk).decode("utf-8")
        except UnicodeDecodeError:  # a broken sequence (bytes next to an unknown token): step past one byte
            pos += 1
            continue
        if is_hangul_syllable(ch):
            (whole if len({index for _, index in chunk}) == 1 else split).append(ch)
        pos += len(chunk)
    return whole, split


def share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def korean_fertility(tokenizer, texts: list[str]) -> dict:
    """Counts and rates for Korean texts under one tokenizer (definitions in the module docstring).

    `hangul_in_byte_pieces_examples` lists the syllables most often spelled with byte pieces.
    """
    texts = [nfc(text) for text in texts]
    if not texts:
        raise ValueError("korean_fertility needs at least one text")
    mode, alphabet, unk = byte_mode(tokenizer), byte_level_alphabet(), tokenizer.unk_token_id
    counts, split_syllables = Counter(), Counter()
    encoded = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    for text, ids in zip(texts, encoded):
        pieces = [token_bytes(token, mode, alphabet) for token in tokenizer.convert_ids_to_tokens(ids)]
        whole, split = hangul_whole_and_split([raw for raw, _ in pieces])
        counts.update(
            characters=sum(not ch.isspace() for ch in text),
            hangul_syllables=sum(map(is_hangul_syllable, text)),
            eojeol=len(text.split()),
            tokens=len(ids),
            byte_pieces=sum(is_piece for _, is_piece in pieces),
            unknown_tokens=sum(i == unk for i in ids) if unk is not None else 0,
            hangul_syllables_whole=len(whole),
            hangul_syllables_in_byte_pieces=len(split),
        )
        split_syllables.update(split)
    keys = ["characters", "hangul_syllables", "eojeol", "tokens", "byte_pieces", "unknown_tokens",
            "hangul_syllables_whole", "hangul_syllables_in_byte_pieces"]
    return {
        "texts": len(texts),
        "byte_mode": mode,
        **{key: counts[key] for key in keys},
        "tokens_per_char": share(counts["tokens"], counts["characters"]),
        "tokens_per_eojeol": share(counts["tokens"], counts["eojeol"]),
        "byte_fallback_rate": share(counts["byte_pieces"], counts["tokens"]),
        "hangul_syllables_whole_share": share(counts["hangul_syllables_whole"], counts["hangul_syllables"]),
        "hangul_syllables_in_byte_pieces_share": share(counts["hangul_syllables_in_byte_pieces"],
                                                       counts["hangul_syllables"]),
        "unk_rate": share(counts["unknown_tokens"], counts["tokens"]),
        "hangul_in_byte_pieces_examples": [ch for ch, _ in split_syllables.most_common(10)],
    }


def load_tokenizer(source: str | None, hub: dict[str, str | None] | None = None):
    """(tokenizer, None), or (None, why not) when there is no source or it cannot be loaded. A folder that exists is
    read from disk alone (local_files_only: never the hub); anything else is a hub id, looked for on the hub only
    when it answers (hub_unreachable, asked once per report through `hub`), else in the local cache: without a
    network, the hub's retries took some 50 s per hub id before it was given up."""
    if source is None:
        return None, "no source given"
    path = Path(source).expanduser()
    if path.is_dir():
        return _from_pretrained(str(path), local_files_only=True)
    from training.models import HUB_ID

    if source.startswith((".", "~", "/")) or not HUB_ID.match(source):  # a path, never a hub id ("org/name")
        return None, f"no such folder: {path}"
    hub = {} if hub is None else hub
    if "unreachable" not in hub:
        hub["unreachable"] = hub_unreachable()
    if hub["unreachable"] is None:
        return _from_pretrained(source)
    tokenizer, _ = _from_pretrained(source, local_files_only=True)  # downloaded earlier: the cache has it
    if tokenizer is not None:
        return tokenizer, None
    return None, (f"not a folder here nor in the local Hugging Face cache, and the hub cannot be reached "
                  f"({hub['unreachable']}): download it where the hub is reachable (hf download {source} --exclude "
                  "'*.safetensors' '*.bin'), or pass its local folder")


def hub_unreachable() -> str | None:
    """Why the Hugging Face Hub cannot be asked for files now (HF_HUB_OFFLINE, or one request that gets no
    answer within 10 s), else None."""
    from huggingface_hub import constants, get_session

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    try:
        get_session().head(constants.ENDPOINT, timeout=10)
    except Exception as error:  # noqa: BLE001 - the HTTP client's connect, timeout and proxy errors
        return f"{constants.ENDPOINT}: {type(error).__name__}: {error}"[:200]
    return None


def _from_pretrained(source: str, **kwargs):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source, **kwargs), None
    # Broad on purpose: offline hubs, missing folders, bad repo ids and missing sentencepiece all raise
    # different types, and one unavailable tokenizer must not stop the report on the others.
    except Exception as error:  # noqa: BLE001
        first_line = (str(error).strip().splitlines() or [""])[0]
        return None, f"{type(error).__name__}: {first_line}"[:300]


def tokenizer_report(sources: dict[str, str | None], texts: list[str] | None = None) -> list[dict]:
    """One row per named source (a local folder or hub id; None = not available) over `texts`, by default the
    repo's Korean corpus lines."""
    if texts is None:
        from training.tiny_ko import corpus_lines

        texts = corpus_lines()
    rows, hub = [], {}
    for name, source in sources.items():
        tokenizer, reason = load_tokenizer(source, hub)
        if tokenizer is None:
            log.warning("tokenizer %s (%s) unavailable: %s", name, source, reason)
            rows.append({"tokenizer": name, "source": source, "available": False, "reason": reason})
            continue
        stats = korean_fertility(tokenizer, texts)
        rows.append({"tokenizer": name, "source": source, "available": True, "reason": None,
                     "vocab_size": len(tokenizer), **stats})
    return rows


def to_markdown(rows: list[dict]) -> str:
    """A table with one row per tokenizer; unavailable ones show the reason instead of numbers."""
    lines = ["| tokenizer | " + " | ".join(title for title, _, _ in COLUMNS) + " | note |",
             "|---" * (len(COLUMNS) + 2) + "|"]
    for row in rows:
        if row["available"]:
            cells = [fmt.format(row[key]) for _, key, fmt in COLUMNS]
            note = f"{row['texts']} texts, {row['characters']:,} characters"
        else:
            cells = ["—"] * len(COLUMNS)
            note = "unavailable: " + row["reason"].replace("|", "\\|")
        lines.append(f"| {row['tokenizer']} | " + " | ".join(cells) + f" | {note} |")
    return "\n".join(lines) + "\n"


def write_report(rows: list[dict], out_dir: str | Path) -> tuple[Path, Path]:
    """Write tokenizer_stats.json and tokenizer_stats.md into out_dir, each atomically (temp file, then rename)."""
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / "tokenizer_stats.json", out_dir / "tokenizer_stats.md"
    write_atomic(json_path, json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    write_atomic(md_path, to_markdown(rows))
    return json_path, md_path


def parse_source(spec: str) -> tuple[str, str]:
    name, sep, source = spec.partition("=")
    if not sep or not name or not source:
        raise argparse.ArgumentTypeError(f"--tokenizer wants NAME=FOLDER_OR_HUB_ID, got {spec!r}")
    return name, source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.tokenizer_stats", description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", action="append", type=parse_source, metavar="NAME=SOURCE",
                        help="a local folder or hub id (repeatable); default: " + ", ".join(DEFAULT_SOURCES))
    parser.add_argument("--out", type=Path, help="folder for tokenizer_stats.json and tokenizer_stats.md")
    args = parser.parse_args(argv)
    rows = tokenizer_report(dict(args.tokenizer) if args.tokenizer else DEFAULT_SOURCES)
    print(to_markdown(rows), end="")
    if args.out:
        json_path, md_path = write_report(rows, args.out)
        print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
