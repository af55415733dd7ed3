"""`kosov publish push=true`: the release folder to a Hub repo, as one commit, after checks that come before the
folder is built (a wrong token, tag or visibility costs nothing) and never leaving a repo with two releases mixed."""

from __future__ import annotations

import logging
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.errors import KosovError
from training.redaction import redact
from training.schema import KosovConfig, PublishConfig

log = logging.getLogger(__name__)

RELEASE_FILES = ("README.md", "LICENSE.md", "kosov_recipe.yaml", "provenance.json", "training_curve.png",
                 "eval_report.json", "eval_report.png")  # what publish writes besides the adapter's own files
KOSOV_MARKER = "kosov_recipe.yaml"  # a repo holding it holds a kosov release: its files may be replaced


@dataclass
class HubTarget:
    """The Hub repo a push goes to, checked before anything is built."""

    api: Any
    repo_id: str
    private: bool | None  # None: a new repo is private
    exists: bool
    stale: list[str]  # files of an earlier kosov release in the repo; deleted unless this release has them too
    parent: str | None = None  # the repo's commit when checked: the push is refused if the repo moved since


def _offline_error(cfg: KosovConfig) -> KosovError:
    mirror = cfg.mirror or os.environ.get("KOSOV_MIRROR")
    if mirror:  # the mirror (apply_mirror) set HF_HUB_OFFLINE, not the user
        return KosovError(f"push=true, but the mirror {mirror} (mirror= or KOSOV_MIRROR) keeps this process off the "
                          "Hub; nothing was built", fix="pass mirror=null on a machine that reaches the Hub, or build "
                                                        "the release here without push=true (with repo_id=<org>/<name>) "
                                                        "and push the folder from one that does: kosov publish "
                                                        "release=<folder> push=true")
    return KosovError("push=true, but HF_HUB_OFFLINE=1 keeps this process off the Hub; nothing was built",
                      fix="unset HF_HUB_OFFLINE on a machine that reaches the Hub, or build the release here without "
                          "push=true (with repo_id=<org>/<name>) and push the folder from one that does: kosov publish "
                          "release=<folder> push=true")


def _check_write_access(api: Any, repo_id: str, exists: bool) -> None:
    """A read token, or a new repo in a namespace that is neither the token's user nor one of its orgs, would fail
    at the upload: after the release was built. A fine-grained token's scopes are left to the Hub."""
    me = api.whoami()
    role = ((me.get("auth") or {}).get("accessToken") or {}).get("role")
    if role == "read":
        # get_token() reads HF_TOKEN (then HUGGING_FACE_HUB_TOKEN) before the token `hf auth login` stored: a new
        # login changes nothing while the variable is set
        variable = next((v for v in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN") if os.environ.get(v, "").strip()), None)
        raise KosovError(f"push=true, but the Hugging Face token of {me.get('name')} is a read token"
                         f"{f' (from {variable} in the environment)' if variable else ''}: it cannot write to "
                         f"{repo_id}; nothing was built",
                         fix=(f"replace {variable} with a token with write access (huggingface.co/settings/tokens): "
                              f"export {variable}=<a write token>, or unset {variable} to use the token `hf auth "
                              "login` stored, which it overrides") if variable else
                             "use a token with write access (huggingface.co/settings/tokens): `hf auth login` with "
                             "it, or export HF_TOKEN=<a write token>")
    namespace = repo_id.split("/")[0] if "/" in repo_id else me.get("name")
    mine = {me.get("name"), *(org.get("name") for org in me.get("orgs") or [])}
    if not exists and role != "fineGrained" and namespace not in mine:
        raise KosovError(f"{repo_id} does not exist (or this token cannot see it), and the token's user "
                         f"{me.get('name')} cannot create it: {namespace} is neither that user nor one of its orgs "
                         f"({', '.join(sorted(filter(None, mine)))}); nothing was built",
                         fix="check repo_id, or use a token of a member of that org")


def hub_target(cfg: KosovConfig, adapter_files: tuple[str, ...]) -> HubTarget:
    """Check a push=true before the release folder is built: no token or a read one, an unreachable Hub, a repo
    the token cannot create, a repo whose visibility is not the one publish.private asks for, or a tag the repo
    already has stop it with nothing built."""
    from huggingface_hub import HfApi, constants, get_token
    from huggingface_hub.errors import HFValidationError, HTTPError, RepositoryNotFoundError
    from huggingface_hub.utils import validate_repo_id

    if not cfg.repo_id:
        raise KosovError("push=true needs repo_id=<org>/<name>")
    try:
        validate_repo_id(cfg.repo_id)
    except HFValidationError as e:
        raise KosovError(f"repo_id={cfg.repo_id!r} is not a Hub repo id: {e}",
                         fix="use <org or user>/<name>: letters, digits, '-', '_', '.'") from None
    if constants.HF_HUB_OFFLINE:
        raise _offline_error(cfg)
    token = get_token()  # HF_TOKEN, or the token `hf auth login` stored
    if not token:
        raise KosovError("push=true, but no Hugging Face token is configured",
                         fix="export HF_TOKEN=<a write token> or run `hf auth login`; nothing was built or uploaded")
    api, wanted = HfApi(token=token), cfg.publish.private
    try:
        try:
            info = api.repo_info(cfg.repo_id)
        except RepositoryNotFoundError:  # a gated or private repo the token cannot see reads so too
            _check_write_access(api, cfg.repo_id, exists=False)
            return HubTarget(api, cfg.repo_id, wanted, exists=False, stale=[])
        _check_write_access(api, cfg.repo_id, exists=True)
        tags = {t.name for t in api.list_repo_refs(cfg.repo_id).tags} if cfg.publish.tag else set()
        # the files of the commit checked, which the push names as its parent: a repo that moved since is refused
        remote = api.list_repo_files(cfg.repo_id, revision=info.sha)
    except (HTTPError, OSError) as e:
        raise KosovError(f"could not check {cfg.repo_id} on the Hub: {e}",
                         fix="check the network and the token (`hf auth whoami`); nothing was built") from e
    if wanted is not None and bool(info.private) != wanted:
        shown = "private" if info.private else "public"
        raise KosovError(f"{cfg.repo_id} exists and is {shown}, and publish.private={str(wanted).lower()} asks for "
                         f"{'private' if wanted else 'public'}: kosov never changes a repo's visibility; nothing was "
                         "built", fix=f"change it in the repo's settings on the Hub, or leave publish.private unset "
                                      f"to publish into the {shown} repo")
    if cfg.publish.tag in tags:
        raise KosovError(f"{cfg.repo_id} already has the tag {cfg.publish.tag}, which names an earlier release",
                         fix="choose another publish.tag (e.g. the next version); nothing was built")
    # Only a repo an earlier kosov release went to: elsewhere the same names (tokenizer.model, README.md) are
    # someone's full model or notes, which a release would overwrite (and its adapter_config.json would make
    # transformers load the repo as an adapter).
    foreign = sorted(f for f in remote if f != ".gitattributes")
    if foreign and KOSOV_MARKER not in remote:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise KosovError(f"{cfg.repo_id} holds files that are not a kosov release ({shown}): a release would "
                         "replace its README.md and tokenizer files and add an adapter to it; nothing was built",
                         fix="publish to a new repo_id (kosov creates it), or empty that repo on the Hub first")
    stale = sorted(set(remote) & {*adapter_files, *RELEASE_FILES}) if KOSOV_MARKER in remote else []
    return HubTarget(api, cfg.repo_id, bool(info.private), exists=True, stale=stale, parent=info.sha)


def push_release(cfg: KosovConfig, target: HubTarget, folder: Path, files: list[str]) -> None:
    """One commit with the release; files an earlier kosov release put there and this one lacks (an eval report,
    a tokenizer file) are deleted in it, so the repo never mixes two releases. Files kosov never writes stay.
    The commit names the repo's commit hub_target checked as its parent: if someone pushed meanwhile (which files
    are stale, which tags exist may have changed), the Hub refuses it, and a repo created meanwhile is not taken
    over. A tag that fails after the commit is reported as that: the release is on the Hub, untagged."""
    from huggingface_hub.errors import HfHubHTTPError, HTTPError

    gone = [f for f in target.stale if f not in files]
    try:
        url = target.api.create_repo(target.repo_id, private=target.private is not False, exist_ok=target.exists)
        commit = target.api.upload_folder(folder_path=str(folder), repo_id=target.repo_id, allow_patterns=files,
                                          delete_patterns=gone or None, commit_message=cfg.publish.commit_message,
                                          parent_commit=target.parent)
    except HfHubHTTPError as e:
        # 412: the parent commit is no longer the branch's head; 409: a conflict (the repo exists after all)
        if _status(e) not in (409, 412):
            raise _upload_failed(cfg, target, folder, e) from e
        moved = (f"{target.repo_id} changed on the Hub since kosov checked it (at commit {target.parent[:12]}): "
                 "someone pushed to it meanwhile" if target.parent else
                 f"{target.repo_id} exists now, and did not (or this token could not see it) when kosov checked: "
                 "someone created it meanwhile")
        raise KosovError(f"{moved}; nothing was committed", where=str(folder),
                         fix=f"{_again(cfg, folder)}: kosov checks the repo anew (its files "
                             "and tags) before it pushes") from e
    except (HTTPError, OSError, RuntimeError) as e:  # hf_xet's transfer errors are RuntimeErrors
        raise _upload_failed(cfg, target, folder, e) from e
    if cfg.publish.tag:
        try:
            target.api.create_tag(target.repo_id, tag=cfg.publish.tag, revision=commit.oid)
        except (HTTPError, OSError) as e:
            raise _tag_failed(cfg, target, folder, commit.oid, e) from e
    log.info("pushed %d files to %s (%s)%s%s", len(files), url, "private" if target.private is not False else
             "public", f", tagged {cfg.publish.tag}" if cfg.publish.tag else "",
             f"; deleted the earlier release's {', '.join(gone)}" if gone else "")


def _status(e: Exception) -> int | None:
    return getattr(getattr(e, "response", None), "status_code", None)


def _override(key: str, value: Any) -> str:
    """key=value as the shell passes it to Hydra unchanged: a value with spaces, quotes or Hydra's own characters
    (or one that would read as a number, a bool or null) quoted; secrets redacted."""
    text = str(value).lower() if isinstance(value, bool) else str(redact(value))
    if not isinstance(value, bool) and not (re.fullmatch(r"[A-Za-z_][\w.-]*", text) and
                                            text.lower() not in ("true", "false", "null", "none", "nan", "inf")):
        # Hydra's quoted value: backslashes before a quote (or the end) doubled, quotes and ${ escaped
        text = re.sub(r'(\\+)(?="|$)', r"\1\1", text).replace('"', '\\"').replace("${", "\\${")
        text = f'"{text}"'
    return shlex.quote(f"{key}={text}")


def again_command(cfg: KosovConfig, folder: Path) -> str:
    """The command that pushes the finished release folder again, with the push settings this one was given."""
    defaults = PublishConfig()
    settings = [_override(f"publish.{key}", getattr(cfg.publish, key)) for key in ("tag", "private", "commit_message")
                if getattr(cfg.publish, key) != getattr(defaults, key)]
    return " ".join(["kosov publish", shlex.quote(f"release={folder}"), "push=true", *settings])


def _again(cfg: KosovConfig, folder: Path) -> str:
    """How to push the finished release folder again: as it is (release=), nothing rebuilt."""
    return f"push the folder again ({again_command(cfg, folder)})"


def _upload_failed(cfg: KosovConfig, target: HubTarget, folder: Path, e: Exception) -> KosovError:
    return KosovError(f"the upload to {target.repo_id} failed: {type(e).__name__}: {e}", where=str(folder),
                      fix=f"the release folder is complete; check the token's write access and the network, then "
                          f"{_again(cfg, folder)}")


def _tag_failed(cfg: KosovConfig, target: HubTarget, folder: Path, oid: str, e: Exception) -> KosovError:
    """The commit is on the Hub: pushing the folder again would commit the same files once more (and be refused
    if the tag exists now). What is left is tagging that commit."""
    tag = cfg.publish.tag
    done = (f"the release is on the Hub ({target.repo_id}, commit {oid}), but tagging it {tag} failed: "
            f"{type(e).__name__}: {e}")
    if _status(e) == 409:  # the tag exists now: hub_target saw none before the upload
        return KosovError(f"{done}; the tag {tag} exists now (someone created it meanwhile)", where=str(folder),
                          fix=f"see which commit {tag} names (https://huggingface.co/{target.repo_id}/tree/{tag}); "
                              f"tag this release with another name: hf repos tag create {target.repo_id} <new tag> "
                              f"--revision {oid}")
    return KosovError(done, where=str(folder),
                      fix=f"do not push the folder again (its files are on the Hub); tag that commit: "
                          f"hf repos tag create {target.repo_id} {shlex.quote(tag)} --revision {oid}")
