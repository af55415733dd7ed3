"""Chat rows on disk: every bad row is named by file and line, skipping counts rows by reason, and the
project's own seed dataset is clean."""

from __future__ import annotations

import json
import os
import unicodedata
from pathlib import Path

import pytest

from data_tools.chat_io import BadRowError, load_chat_files, prompt_row, write_jsonl

SEED = Path(__file__).resolve().parents[2] / "data_tools" / "datasets" / "ko_chat_seed.jsonl"
GOOD = {"messages": [{"role": "user", "content": "안녕?"}, {"role": "assistant", "content": "안녕하세요!"}]}

BAD_ROWS = {
    "malformed JSON": b'{"messages": [{"role": "user", "content": "\xec\x95\x88\xeb\x85\x95"}',
    "missing messages": json.dumps({"conversation": []}).encode(),
    "unknown role": json.dumps({"messages": [{"role": "human", "content": "안녕"},
                                             {"role": "assistant", "content": "네"}]}).encode(),
    "empty assistant turn": json.dumps({"messages": [{"role": "user", "content": "안녕"},
                                                     {"role": "assistant", "content": "  "}]}).encode(),
    "not UTF-8": "안녕하세요".encode("cp949"),
    # valid JSON, but half an emoji: loading passed it and training crashed in the tokenizer, naming no row
    "not UTF-8 ": b'{"messages": [{"role": "user", "content": "hi \\ud83d"}, {"role": "assistant", "content": "ok"}]}',
    "turn order": json.dumps({"messages": [{"role": "assistant", "content": "네"},
                                           {"role": "user", "content": "안녕"}]}).encode(),
    "no final assistant turn": json.dumps({"messages": [{"role": "user", "content": "안녕"}]}).encode(),
    # thinking with no answer after it would teach the model to think and stop
    "empty assistant turn ": json.dumps({"messages": [{"role": "user", "content": "안녕"},
                                                      {"role": "assistant", "content": "<think>인사</think> "}]}).encode(),
    "thinking twice": json.dumps({"messages": [{"role": "user", "content": "안녕"},
                                               {"role": "assistant", "content": "<think>A</think>네",
                                                "reasoning_content": "B"}]}).encode(),
    # a distilled answer cut off while thinking: trained on, it teaches the model to stop mid-thought
    "unfinished thinking": json.dumps({"messages": [{"role": "user", "content": "3 더하기 2는?"},
                                                    {"role": "assistant", "content": "<think>풀이를 해보면 3 더하기"}]},
                                      ensure_ascii=False).encode(),
    # tags inside the thinking: the template adds its own, and the model would learn to open a second block
    "think tags in reasoning_content": json.dumps({"messages": [
        {"role": "user", "content": "3+2?"},
        {"role": "assistant", "content": "5", "reasoning_content": "먼저 <think>3+2</think> 계산"}]}).encode(),
    # zero-width spaces alone (scraped Korean text): no answer at all
    "empty assistant turn  ": json.dumps({"messages": [{"role": "user", "content": "안녕"},
                                                       {"role": "assistant", "content": "\u200b\u2060"}]}).encode(),
}


def jsonl_with(tmp_path: Path, bad: bytes, line: int = 3) -> Path:
    rows = [json.dumps(GOOD, ensure_ascii=False).encode()] * 4
    rows.insert(line - 1, bad)
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    return path


@pytest.mark.parametrize("reason", BAD_ROWS)
def test_a_bad_row_names_file_line_and_fix(tmp_path, reason):
    path = jsonl_with(tmp_path, BAD_ROWS[reason])
    with pytest.raises(BadRowError) as error:
        load_chat_files([path])
    assert error.value.reason == reason.strip()
    assert f"{path}:3" in str(error.value) and "Fix:" in str(error.value)


def test_skipping_counts_bad_rows_by_reason_and_keeps_the_good(tmp_path):
    path = tmp_path / "mixed.jsonl"
    good = json.dumps(GOOD, ensure_ascii=False).encode()
    path.write_bytes(b"\n".join([good, BAD_ROWS["unknown role"], good, BAD_ROWS["malformed JSON"],
                                 BAD_ROWS["unknown role"], b"", good]) + b"\n")
    report = load_chat_files([path], on_bad_row="skip")
    assert len(report.rows) == 3
    assert report.skipped == {"unknown role": 2, "malformed JSON": 1}
    assert [r.where for r in report.rows] == [f"{path}:1", f"{path}:3", f"{path}:7"]
    assert report.sources[0]["rows_read"] == 6 and len(report.sources[0]["sha256"]) == 64


ONE_OBJECT = {"data": [GOOD, GOOD]}


@pytest.mark.parametrize("content, problem", [
    (b"[" + b'{"messages": []},\n' * 300 + b"]", "malformed JSON"),  # a trailing comma: no row is readable
    (("[" + json.dumps(GOOD, ensure_ascii=False) + "]").encode("cp949"), "not UTF-8"),
    (json.dumps(ONE_OBJECT, ensure_ascii=False, indent=2).encode(), "not rows"),  # one object over many lines
    (json.dumps(ONE_OBJECT, ensure_ascii=False).encode(), "missing messages"),  # on one line: one (bad) row
])
def test_a_json_file_that_is_not_rows_stops_the_run_even_when_skipping_rows(tmp_path, content, problem):
    path = tmp_path / "data.json"
    path.write_bytes(content)
    good = jsonl_with(tmp_path, json.dumps(GOOD).encode())
    if problem == "missing messages":  # a row-level flaw: skipped and counted, as before
        assert load_chat_files([good, path], on_bad_row="skip").skipped == {"missing messages": 1}
        return
    with pytest.raises(BadRowError) as error:  # losing a whole file is never "one skipped row"
        load_chat_files([good, path], on_bad_row="skip")
    assert error.value.reason == problem and str(path) in str(error.value) and "Fix:" in str(error.value)


def test_prompt_columns_are_normalised_to_nfc_like_the_text(tmp_path):
    path = tmp_path / "prompts.jsonl"
    row = {"prompt": "무슨 요일?", "answer": unicodedata.normalize("NFD", "수요일")}
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    [read] = load_chat_files([path], check=prompt_row).rows
    assert read.columns["answer"] == "수요일"  # so the math reward can match the NFC completion


def test_text_is_normalised_to_nfc(tmp_path):
    nfd = unicodedata.normalize("NFD", "한국어")
    path = tmp_path / "nfd.jsonl"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": nfd},
                                             {"role": "assistant", "content": nfd}]}) + "\n", encoding="utf-8")
    [row] = load_chat_files([path]).rows
    assert row.messages[0]["content"] == "한국어" and len(row.messages[0]["content"]) == 3


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_a_byte_order_mark_is_not_data(tmp_path, suffix):
    """Notepad and Excel save UTF-8 with a BOM: the first row must still be read, JSON arrays still recognised."""
    path = tmp_path / f"train{suffix}"
    body = (json.dumps([GOOD, GOOD], ensure_ascii=False) if suffix == ".json"
            else "\n".join([json.dumps(GOOD, ensure_ascii=False)] * 2) + "\n")
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    report = load_chat_files([path], on_bad_row="skip")
    assert len(report.rows) == 2 and not report.skipped
    assert report.rows[0].messages == GOOD["messages"]


def test_parquet_rows_are_named_by_row_number(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [GOOD, {"messages": [{"role": "user", "content": "안녕"}, {"role": "robot", "content": "삐"}]}]
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(BadRowError, match=r"train\.parquet row 2: unknown role"):
        load_chat_files([path])


def test_write_jsonl_round_trips_korean(tmp_path):
    path = tmp_path / "out" / "rows.jsonl"
    write_jsonl([GOOD], path)
    assert "안녕하세요" in path.read_text(encoding="utf-8")  # readable Hangul, not \\u escapes
    assert load_chat_files([path]).rows[0].messages == GOOD["messages"]


def test_seed_dataset_is_clean_and_carries_provenance():
    report = load_chat_files([SEED])
    assert len(report.rows) >= 300 and not report.skipped
    assert all(r.meta and r.meta["license"] == "Apache-2.0" and r.meta["source"] for r in report.rows)
    kinds = {"system": 0, "multi": 0, "reasoning": 0}
    for row in report.rows:
        kinds["system"] += row.messages[0]["role"] == "system"
        kinds["multi"] += sum(m["role"] == "assistant" for m in row.messages) > 1
        kinds["reasoning"] += any("reasoning_content" in m for m in row.messages)
    assert min(kinds.values()) >= 20, kinds


def test_a_folder_given_as_a_data_file_says_it_is_a_folder(tmp_path):
    with pytest.raises(BadRowError, match="not folders") as error:
        load_chat_files([tmp_path])
    assert "data.hub_id" in str(error.value)


def test_a_meta_stored_as_json_text_is_read_as_an_object(tmp_path):
    """Hub and Parquet exports often store meta as JSON text: it used to be dropped silently, provenance and all."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = json.dumps({"source": "hub-export", "license": "CC-BY-4.0", "answer": "700"}, ensure_ascii=False)
    path = tmp_path / "prompts.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": "1,000원에서 300원을 쓰면 얼마가 남아요?", "answer": "700",
                                          "meta": meta}]), path)
    [row] = load_chat_files([path], check=prompt_row).rows
    assert row.meta == {"source": "hub-export", "license": "CC-BY-4.0", "answer": "700"}
    assert row.columns["answer"] == "700"
    sft = jsonl_with(tmp_path, json.dumps({**GOOD, "meta": meta}, ensure_ascii=False).encode())
    assert load_chat_files([sft]).rows[2].meta["license"] == "CC-BY-4.0"


@pytest.mark.parametrize("meta", [["수학"], 1200, "정답: 1200", '["1200"]'],
                         ids=["list", "number", "text", "text of a JSON list"])
def test_a_meta_that_is_not_an_object_names_the_row_and_what_meta_must_be(tmp_path, meta):
    path = jsonl_with(tmp_path, json.dumps({**GOOD, "meta": meta}, ensure_ascii=False).encode())
    with pytest.raises(BadRowError) as error:
        load_chat_files([path])
    assert f"{path}:3: bad meta" in str(error.value) and "meta must be an object" in error.value.fix
    assert prompt_row("p.jsonl:7", {"prompt": "질문", "meta": None}).meta is None  # null is no meta, not a bad row


@pytest.mark.parametrize("meta", ["", "  \n", "null"], ids=["empty text", "blanks", "the text null"])
def test_a_meta_stored_as_empty_text_or_null_text_is_no_meta(tmp_path, meta):
    """pandas and Parquet exports store a row without meta so: it was refused as a bad row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "prompts.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": "사과가 3개 있어요. 2개를 먹으면?", "answer": "1", "meta": meta}]),
                   path)
    [row] = load_chat_files([path], check=prompt_row).rows
    assert row.meta is None and row.columns["answer"] == "1"
    sft = jsonl_with(tmp_path, json.dumps({**GOOD, "meta": meta}, ensure_ascii=False).encode())
    assert load_chat_files([sft]).rows[2].meta is None


def test_a_json_array_saved_as_jsonl_is_read_as_an_array(tmp_path):
    """Read line by line, a pretty-printed array lost every row, and one with a row per line all but its last (no
    trailing comma) under on_bad_row=skip: whole files dropped, as skipping must never do."""
    rows = [GOOD, {**GOOD, "meta": {"license": "MIT"}}]
    for name, text in (("pretty.jsonl", json.dumps(rows, ensure_ascii=False, indent=2)),
                       ("lines.jsonl", "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n]\n")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        report = load_chat_files([tmp_path / name], on_bad_row="skip")
        assert len(report.rows) == 2 and not report.skipped, name


def test_a_jsonl_whose_first_line_is_an_array_loses_that_line_only(tmp_path):
    """A first line holding a list (the turns without their "messages") made the whole file one unreadable array,
    an error even with on_bad_row=skip; an array on its one line is still read as an array."""
    path = tmp_path / "train.jsonl"
    path.write_text(json.dumps([GOOD["messages"]], ensure_ascii=False) + "\n" + json.dumps(GOOD, ensure_ascii=False)
                    + "\n", encoding="utf-8")
    report = load_chat_files([path], on_bad_row="skip")
    assert [r.where for r in report.rows] == [f"{path}:2"] and report.skipped == {"missing messages": 1}
    one_line = tmp_path / "one_line.jsonl"
    one_line.write_text(json.dumps([GOOD, GOOD], ensure_ascii=False) + "\n", encoding="utf-8")
    assert len(load_chat_files([one_line]).rows) == 2


def test_write_jsonl_is_durable_and_leaves_nothing_behind_when_it_fails(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    path = tmp_path / "rows.jsonl"
    write_jsonl([GOOD], path)
    assert len(synced) == 2  # the file's data, then the folder's entry for its new name
    with pytest.raises(TypeError):
        write_jsonl([GOOD, {"messages": {"집합"}}], path)  # a set is not JSON: fails half-way through
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]  # no temporary file left behind
    assert load_chat_files([path]).rows[0].messages == GOOD["messages"]  # the earlier file, whole


def test_a_byte_order_mark_inside_the_file_is_not_data_either(tmp_path):
    """`cat a.jsonl b.jsonl` of two Notepad files puts b's BOM mid-file: its first row was malformed JSON."""
    line = json.dumps(GOOD, ensure_ascii=False).encode()
    path = tmp_path / "joined.jsonl"
    path.write_bytes(line + b"\n" + b"\xef\xbb\xbf" + line + b"\n")
    report = load_chat_files([path], on_bad_row="skip")
    assert len(report.rows) == 2 and not report.skipped


def test_a_utf16_file_says_so_and_how_to_convert_it(tmp_path):
    """PowerShell 5.1's `>` writes UTF-16: the advice was iconv -f cp949, which garbles it."""
    path = tmp_path / "train.jsonl"
    path.write_bytes((json.dumps(GOOD, ensure_ascii=False) + "\n").encode("utf-16"))
    with pytest.raises(BadRowError) as error:
        load_chat_files([path], on_bad_row="skip")  # the whole file: an error even when skipping rows
    assert "UTF-16" in str(error.value) and "iconv -f utf-16 -t utf-8" in error.value.fix


def test_a_bad_byte_is_placed_by_its_character_column(tmp_path):
    """The column was a byte offset: three times the character column in Korean text."""
    path = tmp_path / "train.jsonl"
    path.write_bytes('{"messages": "한국어 '.encode() + "오류".encode("cp949") + b'"}\n')
    with pytest.raises(BadRowError, match=r"byte 0x[0-9a-f]{2} at column 19"):
        load_chat_files([path])


def test_thinking_is_stored_without_its_tags_and_whitespace_is_no_thinking(tmp_path):
    path = tmp_path / "train.jsonl"
    answer = lambda reasoning: {"messages": [{"role": "user", "content": "3+2?"},
                                            {"role": "assistant", "content": "5", "reasoning_content": reasoning}]}
    write_jsonl([answer("<think>\n3 더하기 2\n</think>"), answer(" \n"), answer("3 더하기 2")], path)
    first, blank, plain = (row.messages[-1] for row in load_chat_files([path]).rows)
    assert first["reasoning_content"] == "\n3 더하기 2\n" and plain["reasoning_content"] == "3 더하기 2"
    assert "reasoning_content" not in blank  # " " rendered a think block the model would learn to leave empty


def test_an_answer_that_mentions_the_think_tag_is_an_answer(tmp_path):
    path = tmp_path / "train.jsonl"
    write_jsonl([{"messages": [{"role": "user", "content": "Qwen3의 생각 블록은 어떻게 시작해요?"},
                               {"role": "assistant", "content": "답변은 <think> 태그로 생각을 시작합니다."}]}], path)
    assert len(load_chat_files([path]).rows) == 1


def test_zero_width_characters_are_taken_out_of_the_text(tmp_path):
    path = tmp_path / "train.jsonl"
    write_jsonl([{"messages": [{"role": "user", "content": "무슨\u200b 요일?"},
                               {"role": "assistant", "content": "수\u200b요일\u2060입니다 👨\u200d👩\u200d👧"}]}], path)
    [row] = load_chat_files([path]).rows
    assert row.messages[1]["content"] == "수요일입니다 👨\u200d👩\u200d👧"  # the emoji keeps its joiners


def test_sharegpt_rows_are_read_as_messages(tmp_path):
    """Many Korean chat datasets on the Hub are ShareGPT rows: they were refused as rows without messages."""
    path = tmp_path / "sharegpt.jsonl"
    write_jsonl([{"conversations": [{"from": "system", "value": "한국어로 답하세요."},
                                    {"from": "human", "value": "수도는?"}, {"from": "gpt", "value": "서울입니다."}]},
                 {"conversations": [{"from": "human", "value": "날씨?"}, {"from": "function_call", "value": "{}"}]}],
                path)
    report = load_chat_files([path], on_bad_row="skip")
    assert [m["role"] for m in report.rows[0].messages] == ["system", "user", "assistant"]
    assert report.rows[0].messages[2]["content"] == "서울입니다." and report.skipped == {"unknown role": 1}
    with pytest.raises(BadRowError, match=f"{path}:2: unknown role: messages\\[1\\] is from 'function_call'"):
        load_chat_files([path])


def test_a_sharegpt_answer_of_weight_0_is_refused_by_line_or_skipped_never_trained_on(tmp_path):
    """ShareGPT exports mark answers not to train on with "weight": 0; kosov dropped the flag and trained on them."""
    path = tmp_path / "weighted.jsonl"
    write_jsonl([{"conversations": [{"from": "human", "value": "예시 질문"}, {"from": "gpt", "value": "답", "weight": 1},
                                    {"from": "human", "value": "진짜 질문"}, {"from": "gpt", "value": "좋은 답"}]},
                 {"conversations": [{"from": "human", "value": "예시 질문"},
                                    {"from": "gpt", "value": "틀린 예시 답", "weight": 0},
                                    {"from": "human", "value": "진짜 질문"},
                                    {"from": "gpt", "value": "좋은 답", "weight": 1}]}], path)
    with pytest.raises(BadRowError, match=rf"{path}:2: weighted turn: messages\[1\] \(assistant\) has weight 0"
                       ) as error:
        load_chat_files([path])
    assert "set its weight to 1" in error.value.fix
    report = load_chat_files([path], on_bad_row="skip")
    assert len(report.rows) == 1 and report.skipped == {"weighted turn": 1}
    # a prompt's earlier answers are context, never trained on: their weight does not matter
    prompt = prompt_row("p:1", {"prompt": [{"from": "human", "value": "질문"}, {"from": "gpt", "value": "답", "weight": 0},
                                           {"from": "human", "value": "다음 질문"}]})
    assert [m["role"] for m in prompt.messages] == ["user", "assistant", "user"]


def test_a_sharegpt_system_column_is_the_first_turn_not_dropped(tmp_path):
    """Many ShareGPT exports keep the system prompt in a top-level "system" column: it was dropped without a word,
    and the model trained without its system prompt."""
    path = tmp_path / "sharegpt.jsonl"
    chat = [{"from": "human", "value": "수도는?"}, {"from": "gpt", "value": "서울입니다."}]
    write_jsonl([{"system": "한국어로 답하세요.", "conversations": chat},
                 {"system": "", "conversations": chat},  # an empty one is none
                 {"system": "한국어로 답하세요.", "conversations": [{"from": "system", "value": "한국어로 답하세요."}, *chat]},
                 {"system": "존댓말로 답하세요.", "conversations": [{"from": "system", "value": "한국어로 답하세요."}, *chat]},
                 {"system": ["목록"], "conversations": chat}], path)
    report = load_chat_files([path], on_bad_row="skip")
    assert [row.messages[0] for row in report.rows] == [{"role": "system", "content": "한국어로 답하세요."},
                                                         {"role": "user", "content": "수도는?"},
                                                         {"role": "system", "content": "한국어로 답하세요."}]
    assert report.skipped == {"bad system": 2}
    with pytest.raises(BadRowError, match=f"{path}:4: bad system: the row has a 'system' column and a different"):
        load_chat_files([path])


def test_an_empty_system_turn_is_dropped_not_rendered_as_an_empty_block(tmp_path):
    path = tmp_path / "sharegpt.jsonl"
    write_jsonl([{"conversations": [{"from": "system", "value": ""}, {"from": "human", "value": "안녕"},
                                    {"from": "gpt", "value": "네"}]},
                 {"messages": [{"role": "system", "content": " \n"}, {"role": "user", "content": "안녕"},
                               {"role": "assistant", "content": "네"}]},
                 {"messages": [{"role": "system", "content": ""}]}], path)
    report = load_chat_files([path], on_bad_row="skip")
    assert [[m["role"] for m in row.messages] for row in report.rows] == [["user", "assistant"]] * 2
    assert report.skipped == {"missing messages": 1}


def test_files_max_rows_leaves_unread_are_named_and_are_no_source_of_the_rows(tmp_path, caplog):
    """data.max_rows takes the first rows in file order: a file after them gave none, yet provenance listed it."""
    import logging

    ko, en = tmp_path / "ko.jsonl", tmp_path / "en.jsonl"
    write_jsonl([GOOD] * 5, ko)
    write_jsonl([GOOD] * 5, en)
    with caplog.at_level(logging.WARNING, logger="data_tools.chat_io"):
        report = load_chat_files([ko, en], max_rows=5)
    assert len(report.rows) == 5 and [s["path"] for s in report.sources] == [str(ko)]
    assert f"not read, not used: {en}" in caplog.text and "data.max_rows=5" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="data_tools.chat_io"):
        both = load_chat_files([ko, en], max_rows=7)
    assert [s["rows_read"] for s in both.sources] == [5, 2] and not caplog.text
