"""Decontamination against benchmark files: a copied item traced to its file, in words or characters, whatever
the file's format; a benchmark's format (the instruction every prompt shares) not matched, a reading passage a few
questions share matched; short questions matched as whole lines of a prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.data_tools.test_gates import KOREAN, gate, sft


KMMLU_ROWS = [
    {"question": "다음 중 민법상 미성년자가 법정대리인의 동의 없이 단독으로 할 수 있는 법률행위로 옳은 것은?",
     "A": "부담 없는 증여를 받는 행위", "B": "토지의 매매", "C": "금전의 차용", "D": "채무의 보증",
     "answer": 1, "Category": "Law", "Human Accuracy": 0.41},
    {"question": "다음 중 조선을 건국한 왕의 이름으로 옳은 것은?", "A": "태조", "B": "태종", "C": "세종",
     "D": "세조", "answer": 1, "Category": "Korean-History", "Human Accuracy": 0.8},
]


@pytest.fixture
def kmmlu(tmp_path) -> Path:
    path = tmp_path / "kmmlu_law_test.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in KMMLU_ROWS) + "\n", encoding="utf-8")
    return path


def test_decontaminate_names_the_benchmark_file_a_copied_question_came_from(kmmlu, tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("한국의 전통 음식 가운데 김치는 배추와 무를 소금에 절여 양념과 버무린 발효 음식으로 "
                     "지역마다 재료와 맛이 조금씩 다르다\n", encoding="utf-8")
    copied = sft("정답은 A입니다.", "문제 풀어 줘: " + KMMLU_ROWS[0]["question"] + " A. 부담 없는 증여를 받는 행위")
    short = sft("태조 이성계입니다.", KMMLU_ROWS[1]["question"])  # 8 words: matched whole
    generic = sft("정답은 2번입니다.", "다음 중 옳은 것은?")  # too short and generic to count
    in_answer = sft("김치는 배추와 무를 소금에 절여 양념과 버무린 발효 음식으로 지역마다 재료와 맛이 조금씩 다르다고 "
                    "알려져 있어요.", "김치가 뭐예요?")
    rows = [copied, short, generic, in_answer, sft(KOREAN)]
    result = gate("decontaminate", eval_files=[str(kmmlu), str(other)])(rows)
    assert dict(result.removed) == {f"overlaps {kmmlu.name}": 2, f"overlaps {other.name}": 1}
    assert result.kept == [generic, rows[4]]
    assert "민법상 미성년자가" in result.examples[f"overlaps {kmmlu.name}"][0]


def test_decontaminate_names_a_benchmark_by_its_file_name_not_this_machines_path(kmmlu, tmp_path):
    """The reason read "overlaps /home/alice/.../kmmlu_law_test.jsonl", and a data card prints it. Two files of one
    name are told apart by their folders."""
    copied = sft("정답은 A입니다.", KMMLU_ROWS[0]["question"])
    result = gate("decontaminate", eval_files=[str(kmmlu)])([copied])
    assert dict(result.removed) == {"overlaps kmmlu_law_test.jsonl": 1}
    for folder, row in (("ko_math", 0), ("other", 1)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "test.jsonl").write_text(json.dumps(KMMLU_ROWS[row], ensure_ascii=False) + "\n",
                                                      encoding="utf-8")
    both = gate("decontaminate", eval_files=[str(tmp_path / "ko_math" / "test.jsonl"),
                                             str(tmp_path / "other" / "test.jsonl")])
    result = both([copied, sft("태조입니다.", KMMLU_ROWS[1]["question"])])
    assert dict(result.removed) == {"overlaps ko_math/test.jsonl": 1, "overlaps other/test.jsonl": 1}
    assert str(tmp_path) not in repr([dict(result.removed), result.examples])


def test_decontaminate_by_characters_survives_changed_spacing(kmmlu, tmp_path):
    respaced = sft("A", KMMLU_ROWS[0]["question"].replace("다음 중", "다음중").replace("할 수 있는", "할수있는"))
    assert gate("decontaminate", eval_files=[str(kmmlu)])([respaced]).kept == [respaced]
    assert dict(gate("decontaminate", eval_files=[str(kmmlu)], unit="char")([respaced]).removed) == {
        f"overlaps {kmmlu.name}": 1}
    as_json, as_parquet = tmp_path / "bench.json", tmp_path / "bench.parquet"
    as_json.write_text(json.dumps({"data": KMMLU_ROWS}, ensure_ascii=False), encoding="utf-8")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"prompt": [{"role": "user", "content": KMMLU_ROWS[0]["question"]}]}]),
                   as_parquet)
    for path in (as_json, as_parquet):
        assert dict(gate("decontaminate", eval_files=[str(path)], unit="char")([respaced]).removed) == {
            f"overlaps {path.name}": 1}


def test_decontaminate_ignores_the_format_every_benchmark_prompt_shares(tmp_path):
    """A benchmark whose prompts all end with one instruction: a training row in the same format is not a copy of
    an item; a row copying an item's own text still is."""
    instruction = "풀이 과정을 쓰고, 마지막 줄에 \"정답: (답)\" 형식으로 답을 쓰십시오. 계산 과정은 자세히 쓰십시오."
    questions = ["민수는 사과를 3개 샀고 지호는 배를 5개 샀습니다. 두 사람이 산 과일은 모두 몇 개입니까?",
                 "기차가 오전 9시에 출발해서 오후 1시에 도착했습니다. 기차를 탄 시간은 몇 시간입니까?",
                 "한 변이 7센티미터인 정사각형의 둘레는 몇 센티미터입니까?",
                 "서연이는 도서관에서 빌린 동화책을 하루에 12쪽씩 읽습니다. 월요일부터 일요일까지 하루도 빠짐없이 "
                 "읽었다면 일주일 동안 읽은 쪽수는 모두 몇 쪽입니까?"]
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"prompt": f"{q}\n\n{instruction}", "instruction": instruction},
                                        ensure_ascii=False) + "\n" for q in questions), encoding="utf-8")
    new = sft("정답: 10", f"연필이 한 자루에 500원입니다. 연필 20자루의 값은 모두 얼마입니까?\n\n{instruction}")
    copied = sft("정답: 84", f"{questions[3]} 빨리 답해 주세요.")
    result = gate("decontaminate", eval_files=[str(bench)])([new, copied])
    assert result.kept == [new] and dict(result.removed) == {f"overlaps {bench.name}": 1}
    assert gate("decontaminate", eval_files=[str(bench)], unit="char")([new, copied]).kept == [new]
    with pytest.raises(ValueError, match="boilerplate"):
        gate("decontaminate", eval_files=[str(bench)], boilerplate=1)
    # one short item in the test, dev and val files of a benchmark is still an item, not its format
    splits = [tmp_path / f"{split}.jsonl" for split in ("test", "dev", "val")]
    short = "조선을 세운 태조 이성계가 도읍을 한양으로 옮긴 해는 몇 년입니까?"  # 10 words: matched whole
    for split in splits:
        split.write_text(json.dumps({"question": short}, ensure_ascii=False) + "\n", encoding="utf-8")
    copied_short = sft("1394년", short)
    assert gate("decontaminate", eval_files=[str(f) for f in splits])([copied_short]).kept == []


def test_decontaminate_catches_a_short_question_copied_as_a_line_and_a_passage_some_questions_share(tmp_path):
    """A 5-word question is too generic to find inside a text, but a turn (or line) that is exactly it is a copy; a
    reading passage three questions share is an item's text, not the benchmark's format."""
    passage = ("지난해 우리 마을에서는 버려진 폐교를 주민 도서관으로 고쳐 쓰자는 의견이 나왔다. 주민들은 여러 차례 "
               "회의를 열어 운영 시간과 관리 방법을 정하고, 아이들이 방과 후에 머물 수 있는 공간도 만들기로 했다.")
    records = [{"question": "'밥'의 높임말로 알맞은 것은?", "choices": ["진지", "식사", "밥상", "끼니"]}]
    records += [{"prompt": f"{passage}\n\n질문: {q}"} for q in ("주민들이 정한 것은?", "도서관은 무엇을 고친 것인가?",
                                                             "아이들을 위해 만들기로 한 것은?")]
    records += [{"prompt": f"{i}번 문제: 다음 글과 관계없는 낱말을 찾아 번호와 함께 쓰고 그 까닭을 한 문장으로 설명하시오."}
                for i in range(12)]
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    as_line = sft("진지입니다.", "다음 문제를 풀어 주세요.\n'밥'의 높임말로 알맞은 것은?")
    inside = sft("진지입니다.", "오늘 수업에서 '밥'의 높임말로 알맞은 것은 무엇인지 배웠어요. 뭐였죠?")
    quoted = sft("주민 도서관으로 고쳤다는 내용입니다.", f"이 글을 요약해 주세요: {passage}")
    answer_line = sft("'밥'의 높임말로 알맞은 것은?\n진지입니다.", "높임말 문제를 하나 내고 답해 주세요.")  # not a prompt
    result = gate("decontaminate", eval_files=[str(bench)])([as_line, inside, quoted, answer_line])
    assert result.kept == [inside, answer_line] and dict(result.removed) == {f"overlaps {bench.name}": 2}


def test_decontaminate_counts_a_benchmarks_format_by_records_not_by_fields(tmp_path):
    """Records with long explanation and rationale fields besides the question: the instruction every question ends
    with is in a third of the file's strings but in every record, so it is still the format."""
    instruction = "풀이 과정을 쓰고, 마지막 줄에 \"정답: (답)\" 형식으로 답을 쓰십시오. 계산 과정은 자세히 쓰십시오."
    records = [{"question": f"상자 {i}개에 사과가 {i + 3}개씩 들어 있습니다. 사과는 모두 몇 개입니까?\n{instruction}",
                "explanation": f"상자 하나에 사과가 {i + 3}개씩 있고 상자가 {i}개 있으므로 두 수를 곱하면 전체 사과의 수를 "
                               f"구할 수 있습니다. 따라서 {i}에 {i + 3}을 곱합니다.",
                "rationale": f"곱셈은 같은 수를 여러 번 더하는 것과 같으므로 {i + 3}을 {i}번 더해도 같은 답이 나옵니다. "
                             "이렇게 두 방법으로 확인하면 계산 실수를 줄일 수 있습니다."} for i in range(1, 11)]
    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    new = sft("정답: 10", f"연필이 한 자루에 500원입니다. 연필 20자루의 값은 모두 얼마입니까?\n{instruction}")
    assert gate("decontaminate", eval_files=[str(bench)])([new]).kept == [new]


def test_decontaminate_needs_readable_eval_files(tmp_path):
    with pytest.raises(ValueError, match="needs eval_files"):
        gate("decontaminate")
    with pytest.raises(ValueError, match="evaluation file not found: .*missing.jsonl"):
        gate("decontaminate", eval_files=[str(tmp_path / "missing.jsonl")])
