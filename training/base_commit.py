"""The commit of a hub base: what model.revision (a branch, a tag, a commit; null: main) names now, resolved once
before anything of the base loads, so that the tokenizer and the weights come from that one commit and the run
records it (provenance.json model.loaded_revision; the adapter's adapter_config.json revision). An adapter trained
on "main" is then tied to the weights it was trained on, wherever main has moved since.

transformers 5.x resolves the revision inside each from_pretrained call and keeps the commit to itself (the config's
_commit_hash of 4.x is gone), so kosov resolves it, as huggingface_hub.HfApi.resolve_revision does for transformers:
from the Hub, or offline (HF_HUB_OFFLINE=1, or the Hub unreachable) from the local cache's refs/. The Hub's answer
is waited for HF_HUB_ETAG_TIMEOUT seconds (huggingface_hub's metadata timeout, 10 by default): resolve_revision
asks it without a timeout, and an endpoint (a proxy) that takes the request and never answers held a run at start
for good, with no message.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from training.adapters import ASK, Ask, trained_model
from training.errors import KosovError
from training.models import COMMIT_SHA as COMMIT

log = logging.getLogger(__name__)



def hub_commit(source: str, revision: str | None, cache_dir: str | Path | None = None) -> str | None:
    """The commit `revision` of the hub model `source` names now; a commit is its own; None for a local folder
    (tiny-ko included: a folder has no commit), and where neither the Hub nor the local cache (`cache_dir`: another
    one than HF_HUB_CACHE, a kosov mirror's) can tell (loading it would fail the same way, with its own error)."""
    if Path(source).is_dir():
        return None
    if revision and COMMIT.match(revision):
        return revision
    from huggingface_hub import is_offline_mode

    try:  # offline: from the cache's refs/ without asking (and warning that the Hub cannot be reached)
        return _bounded_api(source, revision).resolve_revision(source, revision=revision, cache_dir=cache_dir,
                                                               local_files_only=is_offline_mode()).resolved
    except Exception as e:  # noqa: BLE001 - not found, gated, unreachable and not cached: the loaders say which
        log.debug("could not resolve %s at revision %s: %s", source, revision, e)
        return None


def _bounded_api(source: str, revision: str | None):
    """An HfApi whose repo_info (the one request resolve_revision makes of the Hub) waits HF_HUB_ETAG_TIMEOUT seconds
    for an answer, and says which endpoint gave none; resolve_revision then falls back to the local cache's refs/."""
    import httpx2
    from huggingface_hub import HfApi, constants

    class BoundedApi(HfApi):
        def repo_info(self, repo_id, *, timeout=None, **kwargs):
            wait = constants.HF_HUB_ETAG_TIMEOUT if timeout is None else timeout
            try:
                return super().repo_info(repo_id, timeout=wait, **kwargs)
            except httpx2.TransportError as error:  # a proxy's refusal is raised as it is, and not said twice here
                if not isinstance(error, httpx2.ProxyError):
                    log.warning("the Hub at %s did not tell which commit of %s model.revision=%s names (%s: %s; "
                                "waited at most HF_HUB_ETAG_TIMEOUT=%s s): taking it from the local cache's refs/ "
                                "(set HF_HUB_OFFLINE=1 not to ask, or HF_ENDPOINT to a Hub this machine reaches)",
                                self.endpoint, source, revision, type(error).__name__, error, wait)
                raise

    return BoundedApi()


def recorded_commit(run: Path) -> str | None:
    """The base commit a run folder's provenance.json records (model.loaded_revision); None for a local base, or a
    run from before kosov recorded it."""
    saved = run / "provenance.json"
    if not saved.is_file():
        return None
    commit = (json.loads(saved.read_text(encoding="utf-8")).get("model") or {}).get("loaded_revision")
    return commit if isinstance(commit, str) and COMMIT.match(commit) else None


def base_commit(source: str, revision: str | None, continues: Path | None = None) -> str | None:
    """The commit a run loads its hub base at: what model.revision names now or, for a run that continues the run in
    the folder `continues` (the folder it resumes, a chained run's SFT stage), the commit that run loaded (its
    provenance records it), wherever model.revision's branch or tag has moved since: it trains on the same weights.
    None for a local folder, and (with a warning) where neither the Hub nor the local cache can tell."""
    if Path(source).is_dir():
        return None
    started = recorded_commit(continues) if continues is not None else None
    if started is not None:
        log.info("loading %s at commit %s, the one the run in %s loaded (model.revision=%s)", source, started,
                 continues, revision)
        return started
    commit = hub_commit(source, revision)
    if commit is None:
        log.warning("could not tell which commit of %s model.revision=%s names (not on the Hub from here, and not in "
                    "the local cache): the run records none", source, revision)
    return commit


_WARNED: set[tuple[str, str | None]] = set()  # (adapter, revision) already warned about by check_adapter_revision


def same_revision(trained: str | None, loaded: str | None) -> bool:
    """Whether two model.revision values name the same weights as far as can be told without asking the Hub: equal,
    both the default branch (null is main), or a commit and an abbreviation of it."""
    trained, loaded = trained or "main", loaded or "main"
    if trained == loaded:
        return True
    hexes = all(len(r) >= 7 and all(c in "0123456789abcdef" for c in r.lower()) for r in (trained, loaded))
    return hexes and (trained.lower().startswith(loaded.lower()) or loaded.lower().startswith(trained.lower()))


def _trained_commit(adapter: Path, run: Path | None, pinned: str | None) -> tuple[str | None, Path | None]:
    """(the commit of the hub base the adapter was trained on, the file that says so): its run's provenance.json
    (model.loaded_revision), else the revision its run pinned or PEFT saved when that is a commit; (None, None) for
    a run on a branch or tag from before kosov recorded the commit it loaded."""
    recorded = recorded_commit(run) if run is not None else None
    if recorded is not None:
        return recorded, run / "provenance.json"
    if pinned is not None and COMMIT.match(pinned):
        return pinned, (run / "config.yaml" if run is not None else adapter / "adapter_config.json")
    return None, None


def check_adapter_revision(adapter: Path, source: str, revision: str | None, commit: str | None | Ask = ASK) -> None:
    """An adapter is loaded on the weights it was trained on. Where its run recorded the commit it loaded
    (provenance.json model.loaded_revision; a bare folder: the revision PEFT saved in adapter_config.json, that
    commit), it is compared with the commit `revision` names now (`commit` as the caller resolved it, None where
    nothing could tell; ASK: resolved here, from the Hub, or the local cache offline): another commit is refused,
    even under the same name (main has moved). Where the commit now cannot be told, the revisions are compared as named: one its run pinned (model.revision in its config.yaml)
    is required; a run on the default branch that recorded no commit takes any revision, with a warning when it
    names one. A local folder (and tiny-ko) is its own revision: model.revision does not change what loads."""
    if Path(source).is_dir():
        return
    run, trained = trained_model(adapter)
    if trained is not None:
        pinned, where = trained.get("revision"), run / "config.yaml"
    else:
        config = adapter / "adapter_config.json"
        pinned, where = json.loads(config.read_text(encoding="utf-8")).get("revision"), config
    pinned = None if pinned is None else str(pinned)
    now = "null (the default branch, main)" if revision is None else repr(revision)
    trained_at, said = _trained_commit(adapter, run, pinned)
    if trained_at is not None:
        loaded = hub_commit(source, revision) if commit is ASK else commit
        if loaded == trained_at:
            return
        if loaded is not None and (pinned in (None, "main") or same_revision(pinned, revision)):
            # the same name on other weights (main has moved), or main at another commit than the run loaded
            raise KosovError(f"the adapter {adapter} was trained on {source} at commit {trained_at} ({said}), but "
                             f"this recipe's model.revision={now} is commit {loaded}: other weights than it was "
                             "trained on", fix=f"set model.revision={trained_at} (the commit it was trained on), or "
                                               "use an adapter trained on this commit")
    if same_revision(pinned, revision):
        return
    if pinned in (None, "main"):
        if trained is None:  # PEFT saved no revision: nothing known to compare
            return
        if (str(adapter), revision) in _WARNED:  # callers check early and again as they load: one warning
            return
        _WARNED.add((str(adapter), revision))
        known = f"at commit {trained_at}, which model.revision={revision} cannot be compared with here (neither " \
            "the Hub nor the local cache says which commit it names)" if trained_at else "no commit recorded"
        log.warning("the adapter %s was trained on %s's default branch (model.revision=%s in %s, %s); it is loaded at "
                    "model.revision=%s, which holds other weights if main has moved since",
                    adapter, source, pinned, where, known, revision)
        return
    raise KosovError(f"the adapter {adapter} was trained on {source} at model.revision={pinned!r} ({where}), but this "
                     f"recipe loads model.revision={now}: an adapter only means something on the weights it was "
                     "trained on", fix=f"set model.revision={pinned} (as its run did), or use an adapter trained on "
                                       "this revision")
