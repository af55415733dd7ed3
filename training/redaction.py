"""Secrets kept out of everything kosov writes: values under secret-looking keys, the secrets in the environment
(HF_TOKEN, WANDB_API_KEY, ...) wherever they appear, and credentials inside URLs."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

SECRET_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "WANDB_API_KEY", "OPENAI_API_KEY")
# Keys whose values are secrets wherever they appear (not e.g. end_of_turn_token, which names a vocabulary item).
SECRET_KEY = re.compile(r"^(.*_)?(token|hf_token|hub_token|auth_token|access_token|api_key|apikey|secret|password)$",
                        re.IGNORECASE)
TOKEN_NAMES = re.compile(r"(end_of_turn|eos|bos|pad|unk|sep|cls|mask)_token$", re.IGNORECASE)

def secret_values() -> list[str]:
    return [v for k in SECRET_ENV if len(v := os.environ.get(k, "")) >= 8]


# Credentials inside URLs: whatever comes before the host's @ (user:password, a token alone, a password holding @,
# or after user: a /), but not a hub path's @revision (hf://datasets/org/name@main); and query values named like keys
# (?api_key=..., &sig=...). Hydra's launchers log a sweep's overrides with ':' escaped (https\://user\:key@host).
# A password is read up to 256 characters: unbounded, a text of many URLs without spaces took quadratic time (an
# exception listing 4,000 endpoints took 9 s to log).
URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*\\?://)(?:[^\s/?#]*@|[^\s/?#@]*:[^\s?#]{0,256}@)",
                          re.IGNORECASE)
URL_SECRET_QUERY = re.compile(r"(?P<name>[?&](?:[a-z0-9_-]*(?:key|token|secret|password|passwd|sig|signature)"
                              r"[a-z0-9_-]*)=)[^&#\s]+", re.IGNORECASE)


def redact_urls(text: str) -> str:
    """'https://user:sk-...@proxy/v1?api_key=sk-...' -> 'https://***@proxy/v1?api_key=***'."""
    return URL_SECRET_QUERY.sub(r"\g<name>***", URL_USERINFO.sub(r"\g<scheme>***@", text))


# An override as Hydra records the command line (multirun.yaml, override_dirname, a launcher's "#N : ..." log line):
# key=value, a value under a secret-looking last key hidden (+synth.judge.api_key=sk-...).
OVERRIDE = re.compile(r"(?<![^\s,])(?P<key>[+~]{0,2}(?:[\w-]+\.)*(?P<last>[\w-]+)=)(?P<value>[^\s,]+)")


def redact_overrides(text: str) -> str:
    """'synth.teacher.api_key=sk-... peft.r=8' -> 'synth.teacher.api_key=*** peft.r=8'."""
    def hide(match: re.Match) -> str:
        last = match.group("last")
        secret = SECRET_KEY.match(last) and not TOKEN_NAMES.search(last)
        return f"{match.group('key')}***" if secret else match.group(0)

    return OVERRIDE.sub(hide, text) if "=" in text else text


def redact_record(value: Any, key: str = "") -> Any:
    """redact(), and the secrets of command-line overrides inside strings (Hydra's record of a sweep)."""
    if isinstance(value, dict):
        return {k: redact_record(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_record(v, key) for v in value]
    value = redact(value, key)
    return redact_overrides(value) if isinstance(value, str) else value


def redact_text(text: str) -> str:
    """A log line or traceback with its secrets hidden: the environment's, URL credentials, secret overrides."""
    return redact_overrides(redact(text))


def _redacted_value(value: Any) -> Any:
    """A log call's msg or argument: a string redacted; another object as itself, unless its text holds a secret
    (an exception naming a URL with credentials), then as that text redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = str(value)
    clean = redact_text(text)
    return value if clean == text else clean


class RedactingFilter(logging.Filter):
    """Secrets out of log records, for every handler they reach (train.log, the terminal, and through it wandb's
    console capture): an error of a teacher or judge naming its base_url with credentials, a secret from the
    environment in a message, in an exception's traceback (log.exception, exc_info) or in a stack (stack_info)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a log call whose arguments do not fit its format: the record goes on, and the handler
            # reports the error as logging does ("--- Logging error ---", msg and args printed), the program goes on
            record.msg = _redacted_value(record.msg)
            if isinstance(record.args, dict):
                record.args = {k: _redacted_value(v) for k, v in record.args.items()}
            elif isinstance(record.args, tuple):
                record.args = tuple(_redacted_value(v) for v in record.args)
        else:
            clean = redact_text(message)
            if clean != message:
                record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:  # formatted here as logging.Formatter.format would, then
            # redacted: the formatter takes exc_text as it is
            try:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            except Exception:  # a malformed exc_info (exc_info=True on a hand-built record): the handler reports
                return True  # it as logging does; a filter that raised would end the program at the log call
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def redact(value: Any, key: str = "") -> Any:
    """Replace values under secret-looking keys, credentials inside URLs, and any secret from the environment
    inside strings."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        if key and SECRET_KEY.match(key) and not TOKEN_NAMES.search(key) and value:
            return "***"
        for secret in secret_values():
            value = value.replace(secret, "***")
        if "://" in value:
            value = redact_urls(value)
    return value


def local_name(path: Any) -> Any:
    """A local path as its last part: the file or folder name says what it was; the rest names the machine's users
    and disks (/home/alice/...), which a public release does not."""
    return Path(path).name if isinstance(path, str) and (Path(path).is_absolute() or path.startswith("~/")) else path


def names_only(value: Any) -> Any:
    """A recipe with every value that is a local path (/data/x.jsonl, ~/models/base) as its last part. One part
    under / is left alone: that is text ("/no_think" in a system prompt), not a folder anyone trains from."""
    if isinstance(value, dict):
        return {k: names_only(v) for k, v in value.items()}
    if isinstance(value, list):
        return [names_only(v) for v in value]
    if isinstance(value, str) and "\n" not in value and (value.startswith("~/") or len(Path(value).parts) > 2):
        return local_name(value)
    return value
