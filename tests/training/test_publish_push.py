"""`kosov publish push=true` against an in-memory Hub (this machine cannot reach the real one): a repo never mixes
two releases, its visibility is never changed behind the user's back, and every refusal comes before anything is
built or uploaded."""

from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import httpx2
import pytest

from training.errors import KosovError
from training.publish import publish
from training.recipes import compose


def http_error(status: int, method: str, url: str):
    from huggingface_hub.errors import HfHubHTTPError

    request = httpx2.Request(method, url)
    return HfHubHTTPError(f"{status}", response=httpx2.Response(status, request=request))


def sha_of(repo: dict) -> str:
    """A repo's head commit: a new one for every commit (a repo a test wrote by hand has its first)."""
    return f"{repo.get('commits', 0):040x}"


class MemoryHub:
    """The part of huggingface_hub.HfApi a push uses, with the semantics of the real one: upload_folder commits the
    allowed files and deletes remote files matching delete_patterns unless the commit uploads them; a commit whose
    parent_commit is not the head is refused (412), as is create_repo of a repo that exists without exist_ok (409)."""

    repos: dict[str, dict] = {}
    me = {"name": "kosov-dev", "orgs": [{"name": "kosov-test"}], "auth": {"accessToken": {"role": "write"}}}
    fail_upload: str | None = None  # "http": the Hub refuses the commit; "xet": the file transfer fails

    def __init__(self, token=None):
        assert token, "a push must use the configured token"

    def whoami(self):
        return self.me

    def repo_info(self, repo_id):
        from huggingface_hub.errors import RepositoryNotFoundError

        if repo_id not in self.repos:
            request = httpx2.Request("GET", f"https://huggingface.co/api/models/{repo_id}")
            raise RepositoryNotFoundError("404", response=httpx2.Response(404, request=request))
        return SimpleNamespace(private=self.repos[repo_id]["private"], sha=sha_of(self.repos[repo_id]))

    def list_repo_refs(self, repo_id):
        return SimpleNamespace(tags=[SimpleNamespace(name=t) for t in self.repos[repo_id]["tags"]])

    def list_repo_files(self, repo_id, revision=None):
        assert revision in (None, sha_of(self.repos[repo_id])), "only the head's files are kept"
        return sorted(self.repos[repo_id]["files"])

    def create_repo(self, repo_id, private=None, exist_ok=False):
        if repo_id in self.repos and not exist_ok:
            raise http_error(409, "POST", "https://huggingface.co/api/repos/create")
        self.repos.setdefault(repo_id, {"private": bool(private), "files": {".gitattributes": b""}, "tags": {}})
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, folder_path, repo_id, allow_patterns, delete_patterns=None, commit_message="",
                      parent_commit=None):
        if self.fail_upload == "http":
            from huggingface_hub.errors import HfHubHTTPError

            request = httpx2.Request("POST", f"https://huggingface.co/api/models/{repo_id}/commit/main")
            raise HfHubHTTPError("403 Forbidden", response=httpx2.Response(403, request=request))
        if self.fail_upload == "xet":  # what hf_xet raises for a failed transfer (its Rust errors)
            raise RuntimeError("Data processing error: CAS service error : Reqwest Error: error sending request")
        if parent_commit is not None and parent_commit != sha_of(self.repos[repo_id]):
            raise http_error(412, "POST", f"https://huggingface.co/api/models/{repo_id}/commit/main")
        self.repos[repo_id]["commits"] = self.repos[repo_id].get("commits", 0) + 1
        files = self.repos[repo_id]["files"]
        for name in list(files):
            if name != ".gitattributes" and any(fnmatch.fnmatch(name, p) for p in delete_patterns or []):
                del files[name]
        for name in allow_patterns:
            files[name] = (Path(folder_path) / name).read_bytes()
        return SimpleNamespace(oid=sha_of(self.repos[repo_id]))

    def create_tag(self, repo_id, tag, revision):
        assert tag not in self.repos[repo_id]["tags"]
        self.repos[repo_id]["tags"][tag] = revision


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", MemoryHub)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # tests run offline; this Hub is local
    monkeypatch.setattr(MemoryHub, "repos", {})
    monkeypatch.setattr(MemoryHub, "me", dict(MemoryHub.me))
    monkeypatch.setenv("HF_TOKEN", "hf_kosovPushTest0123456789abcdefgh")
    return MemoryHub.repos


def push(run, out: Path, *overrides: str):
    return publish(compose([f"run={run}", f"output_dir={out}", "push=true", "repo_id=kosov-test/tiny-ko-lora",
                            "overwrite=true", *overrides]))


def test_a_new_repo_is_private_and_holds_exactly_the_upload_plan(hub, smoke_run, tmp_path):
    result = push(smoke_run.run_dir, tmp_path / "release", "publish.tag=v1")
    repo = hub["kosov-test/tiny-ko-lora"]
    assert result.pushed and repo["private"] and set(repo["tags"]) == {"v1"}
    assert set(repo["files"]) - {".gitattributes"} == set(result.upload)
    assert repo["files"]["README.md"] == (result.folder / "README.md").read_bytes()


def test_a_second_release_deletes_what_the_first_left_and_keeps_the_users_own_files(hub, smoke_run, tmp_path):
    push(smoke_run.run_dir, tmp_path / "release", "publish.tag=v1")
    repo = hub["kosov-test/tiny-ko-lora"]
    repo["files"]["eval_report.json"] = b'{"rows": []}'  # the first release had an eval report, the second has none
    repo["files"]["tokenizer.model"] = b"old"
    repo["files"]["gguf/model-q4.gguf"] = b"the user's own upload"
    result = push(smoke_run.run_dir, tmp_path / "release", "publish.tag=v2")
    assert "eval_report.json" not in repo["files"] and "tokenizer.model" not in repo["files"]
    assert repo["files"]["gguf/model-q4.gguf"] == b"the user's own upload" and ".gitattributes" in repo["files"]
    assert set(repo["files"]) - {".gitattributes", "gguf/model-q4.gguf"} == set(result.upload)
    assert set(repo["tags"]) == {"v1", "v2"}


def test_an_existing_tag_is_refused_before_anything_is_built(hub, smoke_run, tmp_path):
    push(smoke_run.run_dir, tmp_path / "first", "publish.tag=v1")
    before = dict(hub["kosov-test/tiny-ko-lora"]["files"])
    with pytest.raises(KosovError, match="already has the tag v1"):
        push(smoke_run.run_dir, tmp_path / "second", "publish.tag=v1")
    assert not (tmp_path / "second").exists() and hub["kosov-test/tiny-ko-lora"]["files"] == before


@pytest.mark.parametrize("existing_private, asked", [(False, "true"), (True, "false")])
def test_a_repo_of_the_other_visibility_is_refused_and_left_as_it_is(hub, smoke_run, tmp_path, existing_private,
                                                                      asked):
    hub["kosov-test/tiny-ko-lora"] = {"private": existing_private, "files": {".gitattributes": b""}, "tags": {}}
    with pytest.raises(KosovError, match="kosov never changes a repo's visibility"):
        push(smoke_run.run_dir, tmp_path / "release", f"publish.private={asked}")
    assert hub["kosov-test/tiny-ko-lora"] == {"private": existing_private, "files": {".gitattributes": b""},
                                              "tags": {}}
    assert not (tmp_path / "release").exists()


def test_unset_private_publishes_into_an_existing_public_repo(hub, smoke_run, tmp_path):
    hub["kosov-test/tiny-ko-lora"] = {"private": False, "files": {".gitattributes": b""}, "tags": {}}
    result = push(smoke_run.run_dir, tmp_path / "release")
    assert not hub["kosov-test/tiny-ko-lora"]["private"] and "README.md" in hub["kosov-test/tiny-ko-lora"]["files"]
    assert result.pushed


def test_push_under_hub_offline_mode_is_refused_before_building(hub, smoke_run, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(KosovError, match="HF_HUB_OFFLINE"):
        push(smoke_run.run_dir, tmp_path / "release")
    assert not (tmp_path / "release").exists() and not hub


def test_a_repo_that_never_held_a_kosov_release_is_refused_before_anything_is_built(hub, smoke_run, tmp_path):
    """A full model's repo (or anyone's notes): a release overwrote its README.md and tokenizer files, and its
    adapter_config.json made transformers load the repo as an adapter. A repo holding only .gitattributes (as the
    Hub's web page creates it) takes the release."""
    model_files = {".gitattributes": b"", "config.json": b"{}", "README.md": b"# my model", "tokenizer.json": b"{}"}
    hub["kosov-test/tiny-ko-lora"] = {"private": True, "files": dict(model_files), "tags": {}}
    with pytest.raises(KosovError, match=r"holds files that are not a kosov release \(README.md, config.json"):
        push(smoke_run.run_dir, tmp_path / "release")
    assert hub["kosov-test/tiny-ko-lora"]["files"] == model_files and not (tmp_path / "release").exists()
    hub["kosov-test/tiny-ko-lora"]["files"] = {".gitattributes": b""}
    result = push(smoke_run.run_dir, tmp_path / "release")
    assert set(result.upload) <= set(hub["kosov-test/tiny-ko-lora"]["files"])


def test_a_read_token_or_a_foreign_namespace_is_refused_before_anything_is_built(hub, smoke_run, tmp_path):
    MemoryHub.me["auth"] = {"accessToken": {"role": "read"}}
    with pytest.raises(KosovError, match="is a read token"):
        push(smoke_run.run_dir, tmp_path / "release")
    MemoryHub.me["auth"] = {"accessToken": {"role": "write"}}
    with pytest.raises(KosovError, match="someone-else is neither that user nor one of its orgs"):
        publish(compose([f"run={smoke_run.run_dir}", f"output_dir={tmp_path / 'release'}", "push=true",
                         "repo_id=someone-else/tiny-ko-lora"]))
    assert not (tmp_path / "release").exists() and not hub


@pytest.mark.parametrize("failure", ["http", "xet"])
def test_a_failed_upload_is_a_kosov_error_naming_the_finished_folder(hub, smoke_run, tmp_path, monkeypatch, failure):
    monkeypatch.setattr(MemoryHub, "fail_upload", failure)
    with pytest.raises(KosovError, match="the upload to kosov-test/tiny-ko-lora failed") as error:
        push(smoke_run.run_dir, tmp_path / "release")
    assert error.value.where == str(tmp_path / "release") and (tmp_path / "release" / "README.md").is_file()


def test_a_bad_repo_id_or_a_mirror_is_named_before_anything_is_built(hub, smoke_run, tmp_path, monkeypatch):
    import huggingface_hub.constants

    with pytest.raises(KosovError, match="is not a Hub repo id"):
        push(smoke_run.run_dir, tmp_path / "release", "repo_id=kosov-test/bad name")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # as a mirror sets it
    with pytest.raises(KosovError, match="pass mirror=null"):
        push(smoke_run.run_dir, tmp_path / "release", f"mirror={tmp_path / 'mirror'}")
    assert not (tmp_path / "release").exists()


def someone_pushes_first(monkeypatch, change):
    """`change(repos)` happens on the Hub after kosov checked the repo and before it pushes."""
    import training.publish

    push_release = training.publish.push_release

    def pushed_meanwhile(*args, **kwargs):
        change(MemoryHub.repos)
        return push_release(*args, **kwargs)

    monkeypatch.setattr(training.publish, "push_release", pushed_meanwhile)


def test_a_repo_someone_pushed_to_since_the_check_is_refused(hub, smoke_run, tmp_path, monkeypatch):
    """The files to delete were computed from the repo as checked, and the commit went to whatever the repo had
    become: its parent is now the commit checked, and a repo that moved refuses it."""
    push(smoke_run.run_dir, tmp_path / "release", "publish.tag=v1")

    def commit(repos):
        repo = repos["kosov-test/tiny-ko-lora"]
        repo["files"]["README.md"] = b"# a colleague's card"
        repo["commits"] += 1

    someone_pushes_first(monkeypatch, commit)
    with pytest.raises(KosovError, match="changed on the Hub since kosov checked it.*someone pushed to it meanwhile"
                       ) as error:
        push(smoke_run.run_dir, tmp_path / "release", "publish.tag=v2")
    assert f"kosov publish release={tmp_path / 'release'} push=true" in error.value.fix and error.value.where == str(tmp_path / "release")
    repo = hub["kosov-test/tiny-ko-lora"]
    assert repo["files"]["README.md"] == b"# a colleague's card" and set(repo["tags"]) == {"v1"}


def test_a_repo_someone_created_since_the_check_is_not_taken_over(hub, smoke_run, tmp_path, monkeypatch):
    theirs = {".gitattributes": b"", "config.json": b"{}", "model.safetensors": b"weights"}
    someone_pushes_first(monkeypatch, lambda repos: repos.setdefault(
        "kosov-test/tiny-ko-lora", {"private": False, "files": dict(theirs), "tags": {}, "commits": 1}))
    with pytest.raises(KosovError, match="exists now.*someone created it meanwhile"):
        push(smoke_run.run_dir, tmp_path / "release")
    assert hub["kosov-test/tiny-ko-lora"]["files"] == theirs


def test_a_read_token_from_hf_token_says_to_replace_or_unset_it(hub, smoke_run, tmp_path, monkeypatch):
    """The fix said `hf auth login`, which changes nothing while HF_TOKEN is set: get_token() reads it first."""
    import huggingface_hub.constants

    MemoryHub.me["auth"] = {"accessToken": {"role": "read"}}
    with pytest.raises(KosovError, match=r"is a read token \(from HF_TOKEN in the environment\)") as error:
        push(smoke_run.run_dir, tmp_path / "release")
    assert "unset HF_TOKEN" in error.value.fix and "export HF_TOKEN=<a write token>" in error.value.fix
    login = tmp_path / "hf-home" / "token"  # the token `hf auth login` stored, and no HF_TOKEN
    login.parent.mkdir()
    login.write_text("hf_kosovStoredLogin0123456789abcdefgh")
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(login))
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(KosovError, match="is a read token: it cannot write") as error:
        push(smoke_run.run_dir, tmp_path / "release")
    assert "hf auth login" in error.value.fix and "unset" not in error.value.fix


def test_a_license_file_is_uploaded_and_deleted_by_a_later_release_without_one(hub, smoke_run, tmp_path):
    from tests.training.test_model_card import run_with

    noncommercial = run_with(smoke_run, tmp_path / "nc", {"Apache-2.0": 20, "CC-BY-NC-4.0": 3, "CC-BY-NC-3.0": 2})
    push(noncommercial, tmp_path / "release")
    repo = hub["kosov-test/tiny-ko-lora"]
    assert repo["files"]["LICENSE.md"] == (tmp_path / "release" / "LICENSE.md").read_bytes()
    push(smoke_run.run_dir, tmp_path / "release")  # apache-2.0: no LICENSE.md, and the card links none
    assert "LICENSE.md" not in repo["files"] and b"license: apache-2.0" in repo["files"]["README.md"]


def build(run, out: Path, *overrides: str):
    """A release folder, built without pushing (on a closed network, say, or to review its card first)."""
    return publish(compose([f"run={run}", f"output_dir={out}", *overrides]))


def push_folder(folder: Path, *overrides: str):
    return publish(compose([f"release={folder}", "push=true", *overrides]))


def test_a_release_built_earlier_is_pushed_as_edited_without_its_run(hub, smoke_run, tmp_path, caplog):
    build(smoke_run.run_dir, tmp_path / "built", "repo_id=kosov-test/tiny-ko-lora")
    carried = tmp_path / "elsewhere" / "release"  # carried to a machine that reaches the Hub, without the run
    shutil.copytree(tmp_path / "built", carried)
    card = (carried / "README.md").read_text(encoding="utf-8")
    (carried / "README.md").write_text(card + "\n## 검토 의견\n사내 검토를 마쳤습니다.\n", encoding="utf-8")
    (carried / "training_curve.png").unlink()
    crlf = (carried / "README.md").read_text(encoding="utf-8").replace("\n", "\r\n")  # edited on Windows
    (carried / "README.md").write_bytes(b"\xef\xbb\xbf" + crlf.encode("utf-8"))
    result = push_folder(carried, "publish.tag=v1")
    repo = hub["kosov-test/tiny-ko-lora"]
    assert result.pushed and set(repo["tags"]) == {"v1"}
    assert repo["files"]["README.md"] == (carried / "README.md").read_bytes() and "사내 검토" in \
        repo["files"]["README.md"].decode()
    assert set(repo["files"]) - {".gitattributes"} == set(result.upload) and "training_curve.png" not in result.upload
    assert "removed training_curve.png" in caplog.text


def test_a_release_folder_that_cannot_be_pushed_as_it_is_is_refused_before_the_hub_is_asked(hub, smoke_run, tmp_path,
                                                                                             monkeypatch):
    unnamed = tmp_path / "unnamed"
    build(smoke_run.run_dir, unnamed)  # no repo_id: the card tells users to load the run's name
    with pytest.raises(KosovError, match="built without repo_id"):
        push_folder(unnamed)
    named = tmp_path / "named"
    build(smoke_run.run_dir, named, "repo_id=kosov-test/tiny-ko-lora")
    with pytest.raises(KosovError, match="built for repo_id=kosov-test/tiny-ko-lora"):
        push_folder(named, "repo_id=kosov-test/other")
    with pytest.raises(KosovError, match="run= .* or release= .*not both"):
        push_folder(named, f"run={smoke_run.run_dir}")
    with pytest.raises(KosovError, match="publish.merge"):
        push_folder(named, "publish.merge=true")
    with pytest.raises(KosovError, match="not a kosov release folder"):
        push_folder(smoke_run.run_dir)
    card = (named / "README.md").read_text(encoding="utf-8")
    (named / "README.md").write_text(card.replace("license:", "license: [", 1), encoding="utf-8")
    with pytest.raises(KosovError, match="metadata would be refused") as e:
        push_folder(named)
    assert "README.md" in str(e.value)
    (named / "README.md").write_text(card + "\nHF_TOKEN=hf_kosovPushTest0123456789abcdefgh\n", encoding="utf-8")
    with pytest.raises(KosovError, match=r"secret .* \[.README.md.\]"):
        push_folder(named)
    (named / "README.md").write_text(card, encoding="utf-8")
    (named / "adapter_model.safetensors").write_bytes(b"cut")
    with pytest.raises(KosovError, match="adapter_model.safetensors"):
        push_folder(named)
    assert hub == {}, "nothing reached the Hub"


def test_a_release_folder_without_push_lists_what_would_go_up(hub, smoke_run, tmp_path):
    build(smoke_run.run_dir, tmp_path / "release", "repo_id=kosov-test/tiny-ko-lora")
    result = publish(compose([f"release={tmp_path / 'release'}"]))
    assert not result.pushed and "adapter_model.safetensors" in result.upload and hub == {}


def test_a_failed_tag_says_the_release_is_on_the_hub_and_how_to_tag_that_commit(hub, smoke_run, tmp_path,
                                                                                 monkeypatch):
    """create_tag failed after the commit: the error said the upload failed, and its fix pushed the folder again
    (without the tag)."""
    def tag_fails(self, repo_id, tag, revision):
        raise http_error(500, "POST", f"https://huggingface.co/api/models/{repo_id}/tag/main")

    monkeypatch.setattr(MemoryHub, "create_tag", tag_fails)
    with pytest.raises(KosovError) as error:
        push(smoke_run.run_dir, tmp_path / "release", "publish.tag=v1")
    repo = hub["kosov-test/tiny-ko-lora"]
    oid = sha_of(repo)
    assert set(repo["files"]) - {".gitattributes"} == set(json.loads((tmp_path / "release" / "upload_plan.json")
                                                                      .read_text())["files"]) and not repo["tags"]
    assert f"the release is on the Hub (kosov-test/tiny-ko-lora, commit {oid}), but tagging it v1 failed" in \
        error.value.what and "upload" not in error.value.what
    assert f"hf repos tag create kosov-test/tiny-ko-lora v1 --revision {oid}" in error.value.fix
    assert "kosov publish release=" not in error.value.fix

    def tagged_meanwhile(self, repo_id, tag, revision):  # someone tagged the repo after kosov checked it
        raise http_error(409, "POST", f"https://huggingface.co/api/models/{repo_id}/tag/main")

    monkeypatch.setattr(MemoryHub, "create_tag", tagged_meanwhile)
    with pytest.raises(KosovError, match="the tag v2 exists now") as error:
        push(smoke_run.run_dir, tmp_path / "release", "publish.tag=v2")
    assert f"hf repos tag create kosov-test/tiny-ko-lora <new tag> --revision {sha_of(repo)}" in error.value.fix


def test_a_failed_upload_gives_the_command_that_pushes_it_with_the_users_settings(hub, smoke_run, tmp_path,
                                                                                  monkeypatch):
    """The fix said `kosov publish release=... push=true`: run as given, it pushed an untagged release, into a
    repo of the visibility by default, with kosov's commit message."""
    import shlex

    message = 'Release v1, 한국어: "final" ${oc.env:HOME}'
    monkeypatch.setattr(MemoryHub, "fail_upload", "xet")
    cfg = compose([f"run={smoke_run.run_dir}", f"output_dir={tmp_path / 'my release'}", "push=true",
                   "repo_id=kosov-test/tiny-ko-lora", "publish.tag=v1", "publish.private=false"])
    cfg.publish.commit_message = message
    with pytest.raises(KosovError, match="the upload to kosov-test/tiny-ko-lora failed") as error:
        publish(cfg)
    command = error.value.fix.split("push the folder again (", 1)[1].rsplit(")", 1)[0]
    assert "publish.tag=v1" in command and "publish.private=false" in command
    words = shlex.split(command)
    assert words[:2] == ["kosov", "publish"]
    monkeypatch.setattr(MemoryHub, "fail_upload", None)
    commits = []
    upload = MemoryHub.upload_folder
    monkeypatch.setattr(MemoryHub, "upload_folder", lambda self, **kw: commits.append(kw["commit_message"]) or
                        upload(self, **kw))
    result = publish(compose(words[2:]))  # the command, as the shell passes it
    repo = hub["kosov-test/tiny-ko-lora"]
    assert result.pushed and set(repo["tags"]) == {"v1"} and not repo["private"] and commits == [message]
