"""Averages (plain, a missing score, two groups together) and equations stated in words ("어떤 수에 7을 더하고
3을 곱했더니 45가 되었습니다"). Means are exact: integers, or decimals of at most 2 places."""

from __future__ import annotations

from fractions import Fraction

from data_tools.generators.math_ko.lexicon import COUNTER, NAMES, SHAREABLE, SUBJECTS, native_number
from data_tools.generators.math_ko.wording import Template, Worked, num, numbers, pick, writer

def _subjects_sample(rng):
    while True:
        scores = [rng.randint(12, 20) * 5 for _ in range(3)]
        if sum(scores) % 3 == 0:
            return {"name": pick(rng, NAMES), "subjects": "·".join(rng.sample(SUBJECTS, 3)), "scores": scores}


def _subjects_build(s, style):
    a, b, c = s["scores"]
    w = writer(style, **s, listed=", ".join(s["subjects"].split("·")), last=f"{c}점")
    question = w("{name}의 {listed} 점수는 각각 {a}점, {b}점, {last|.} 세 과목 점수의 평균은 몇 <점입니까?|점이에요?>",
                 a=a, b=b)
    steps = [w("세 점수를 모두 더하면 {e|.}", e=f"{a} + {b} + {c} = {a + b + c}(점)"),
             w("평균은 합을 과목 수로 나눈 값이므로 {e|.}", e=f"{a + b + c} ÷ 3 = {(a + b + c) // 3}(점)")]
    return Worked(question, steps, (a + b + c) // 3, "점")


def _collected_sample(rng):
    while True:
        counts = [rng.randint(3, 40) for _ in range(3)]
        if sum(counts) % 3 == 0:
            return {"names": "·".join(rng.sample(NAMES, 3)), "item": pick(rng, SHAREABLE).noun, "counts": counts}


def _collected_build(s, style):
    (n1, n2, n3), (a, b, c) = s["names"].split("·"), s["counts"]
    w = writer(style, **s, c=COUNTER[s["item"]], n1=n1, n2=n2, n3=n3, a=a, b=b, cc=c)
    question = w("{n1|이/가} {item|을/를} {a}{c}, {n2|이/가} {b}{c}, {n3|이/가} {cc}{c} <모았습니다|모았어요>. "
                 "세 사람이 모은 {item} 수의 평균은 몇 {c|?}")
    steps = [w("세 사람이 모은 {item|은/는} 모두 {e|.}", e=f"{a} + {b} + {c} = {a + b + c}({COUNTER[s['item']]})"),
             w("이것을 세 사람으로 나누면 {e|.}", e=f"{a + b + c} ÷ 3 = {(a + b + c) // 3}({COUNTER[s['item']]})")]
    return Worked(question, steps, (a + b + c) // 3, COUNTER[s["item"]])


# (object with 을/를 already fixed text, 합쇼체 verb, 해요체 verb, unit, lowest, highest) for daily records.
RECORDS = (("줄넘기를", "했습니다", "했어요", "번", 40, 200), ("책을", "읽었습니다", "읽었어요", "쪽", 10, 80),
           ("물을", "마셨습니다", "마셨어요", "mL", 300, 1500), ("피아노 연습을", "했습니다", "했어요", "분", 20, 90),
           ("운동장을", "달렸습니다", "달렸어요", "바퀴", 2, 15), ("종이학을", "접었습니다", "접었어요", "마리", 5, 40))
_RECORD = {r[0]: r for r in RECORDS}


def _records_sample(rng):
    what, _, _, _, low, high = pick(rng, RECORDS)
    days = rng.randint(4, 5)
    return {"name": pick(rng, NAMES), "what": what, "values": [rng.randint(low, high) for _ in range(days)]}


def _records_build(s, style):
    _, formal, plain, unit, _, _ = _RECORD[s["what"]]
    values, days = s["values"], len(s["values"])
    answer = Fraction(sum(values), days)  # 4 or 5 days: the mean is exact to 2 decimal places
    w = writer(style, **s, days=days, listed=", ".join(f"{v:,}{unit}" for v in values),
               verb=formal if style == "formal" else plain, unit=unit, q=f"몇 {unit}")
    question = w("{name|은/는} {days}일 동안 {what} 하루에 각각 {listed} {verb}. 하루 평균은 {q|?}")
    steps = [w("{days}일 동안의 합은 {e|.}", e=" + ".join(f"{v:,}" for v in values) + f" = {sum(values):,}({unit})"),
             w("평균은 합을 날수로 나눈 값이므로 {e|.}", e=f"{sum(values):,} ÷ {days} = {num(answer)}({unit})")]
    return Worked(question, steps, answer, unit)


def _missing_sample(rng):
    while True:
        k, goal = rng.randint(3, 4), rng.randint(70, 95)
        scores = [rng.randint(60, 100) for _ in range(k)]
        needed = goal * (k + 1) - sum(scores)
        if 50 <= needed <= 100:
            return {"name": pick(rng, NAMES), "subject": pick(rng, SUBJECTS), "scores": scores, "goal": goal}


def _missing_build(s, style):
    scores, goal = s["scores"], s["goal"]
    k = len(scores)
    total, have = goal * (k + 1), sum(scores)
    w = writer(style, **s, k=native_number(k), k1=native_number(k + 1), listed=", ".join(f"{x}점" for x in scores))
    question = w("{name|은/는} {subject} 시험을 {k} 번 보고 {listed|을/를} <받았습니다|받았어요>. 다음 시험까지 {k1} 번의 "
                 "평균이 {goal}점이 되려면, 다음 시험에서 몇 점을 받아야 <합니까?|해요?>")
    steps = [w("{k1} 번의 평균이 {goal}점이 되려면 점수의 합이 {e|이/가} 되어야 <합니다|해요>.",
               e=f"{goal} × {k + 1} = {total}(점)"),
             w("지금까지 받은 점수의 합은 {e|.}", e=" + ".join(map(str, scores)) + f" = {have}(점)"),
             w("따라서 다음 시험 점수는 {e|.}", e=f"{total} - {have} = {total - have}(점)")]
    return Worked(question, steps, total - have, "점")


def _two_classes_sample(rng):
    while True:
        n1, n2, m1, m2 = rng.randint(18, 32), rng.randint(18, 32), rng.randint(60, 95), rng.randint(60, 95)
        if m1 != m2 and (100 * (n1 * m1 + n2 * m2)) % (n1 + n2) == 0:  # the mean is exact to 2 decimal places
            return {"subject": pick(rng, SUBJECTS), "n1": n1, "m1": m1, "n2": n2, "m2": m2}


def _two_classes_build(s, style):
    a, b = s["n1"] * s["m1"], s["n2"] * s["m2"]
    people = s["n1"] + s["n2"]
    answer = Fraction(a + b, people)
    w = writer(style, **s, last=f"{s['m2']}점")
    question = w("{subject} 시험에서 1반 학생 {n1}명의 평균은 {m1}점이고, 2반 학생 {n2}명의 평균은 {last|.} "
                 "두 반 학생 전체의 평균은 몇 <점입니까?|점이에요?>")
    steps = [w("1반의 점수 합은 {e|.}", e=f"{s['m1']} × {s['n1']} = {a:,}(점)"),
             w("2반의 점수 합은 {e|.}", e=f"{s['m2']} × {s['n2']} = {b:,}(점)"),
             w("두 반의 점수 합은 {e|.}", e=f"{a:,} + {b:,} = {a + b:,}(점)"),
             w("두 반의 학생 수는 {f|.}", f=f"{s['n1']} + {s['n2']} = {people}(명)"),
             w("전체 평균은 {e|.}", e=f"{a + b:,} ÷ {people} = {num(answer)}(점)"),
             w("두 반의 평균을 그냥 더해서 2로 나누면 학생 수가 다른 것이 반영되지 않아 <틀립니다|틀려요>.")]
    return Worked(question, steps, answer, "점")


def _add_sample(rng):
    op, x = pick(rng, ("더", "빼")), rng.randint(3, 99)
    return {"op": op, "a": rng.randint(2, 99) if op == "더" else rng.randint(2, x - 1), "x": x}  # results stay > 0


def _add_build(s, style):
    a, x = s["a"], s["x"]
    adding = s["op"] == "더"
    b = x + a if adding else x - a
    w = writer(style, **s, b=b)
    asked = "어떤 수에 {a|을/를} 더했더니" if adding else "어떤 수에서 {a|을/를} 뺐더니"
    question = w(asked + " {b|이/가} <되었습니다|되었어요>. 어떤 수는 <얼마입니까?|얼마예요?>")
    sign, undo = ("+", "-") if adding else ("-", "+")
    steps = [w("어떤 수를 □라고 하면 {e|.}", e=f"□ {sign} {a} = {b}"),
             w("□를 구하려면 거꾸로 계산하여 {e|.}", e=f"□ = {b} {undo} {a} = {x}")]
    return Worked(question, steps, x, "")


def _times_sample(rng):
    return {"op": pick(rng, ("곱", "나누")), "a": rng.randint(2, 12), "x": rng.randint(2, 99)}


def _times_build(s, style):
    a, x = s["a"], s["x"]
    if s["op"] == "곱":
        b, asked, e, undo = a * x, "어떤 수에 {a|을/를} 곱했더니", f"□ × {a} = {a * x}", f"□ = {a * x} ÷ {a} = {x}"
    else:  # the unknown is a multiple of a, so the division is exact
        b, asked, e, undo = x, "어떤 수를 {a|(으)로} 나누었더니", f"□ ÷ {a} = {x}", f"□ = {x} × {a} = {a * x}"
    w = writer(style, **s, b=b)
    question = w(asked + " {b|이/가} <되었습니다|되었어요>. 어떤 수는 <얼마입니까?|얼마예요?>")
    steps = [w("어떤 수를 □라고 하면 {e|.}", e=e), w("곱셈과 나눗셈은 서로 거꾸로 계산하므로 {e|.}", e=undo)]
    return Worked(question, steps, x if s["op"] == "곱" else a * x, "")


def _add_then_times_sample(rng):
    op, a = pick(rng, ("더", "빼")), rng.randint(2, 20)
    x = rng.randint(2, 60) if op == "더" else rng.randint(a + 1, a + 60)  # what is left after 빼 stays positive
    return {"op": op, "a": a, "k": rng.randint(2, 9), "x": x}


def _add_then_times_build(s, style):
    a, k, x = s["a"], s["k"], s["x"]
    adding = s["op"] == "더"
    inner = x + a if adding else x - a
    w = writer(style, **s, b=inner * k)
    first = "어떤 수에 {a|을/를} 더하고" if adding else "어떤 수에서 {a|을/를} 빼고"
    question = w(first + " {k|을/를} 곱했더니 {b|이/가} <되었습니다|되었어요>. 어떤 수는 <얼마입니까?|얼마예요?>")
    sign, undo = ("+", "-") if adding else ("-", "+")
    steps = [w("어떤 수를 □라고 하면 {e|.}", e=f"(□ {sign} {a}) × {k} = {inner * k}"),
             w("곱하기 전의 수는 {e|.}", e=f"□ {sign} {a} = {inner * k} ÷ {k} = {inner}"),
             w("따라서 {e|.}", e=f"□ = {inner} {undo} {a} = {x}")]
    return Worked(question, steps, x, "")


# (what should have been done, the mistake): 어떤 수에서 a를 빼야 할 것을 잘못하여 더했더니 ...
MISTAKES = (("빼", "더"), ("더", "빼"), ("곱", "더"), ("곱", "빼"))
_PHRASE = {"더": ("어떤 수에 {a|을/를} 더해야", "더했더니"), "빼": ("어떤 수에서 {a|을/를} 빼야", "뺐더니"),
           "곱": ("어떤 수에 {a|을/를} 곱해야", "곱했더니")}
_APPLY = {"더": lambda x, a: x + a, "빼": lambda x, a: x - a, "곱": lambda x, a: x * a}
_SIGN = {"더": "+", "빼": "-", "곱": "×"}


def _mistake_sample(rng):
    should, did = pick(rng, MISTAKES)
    a = rng.randint(2, 9) if should == "곱" else rng.randint(2, 40)
    return {"should": should, "did": did, "a": a, "x": rng.randint(2 * a + 1, 2 * a + 60)}  # every result stays > 0


def _mistake_build(s, style):
    a, x, should, did = s["a"], s["x"], s["should"], s["did"]
    wrong, right = _APPLY[did](x, a), _APPLY[should](x, a)
    w = writer(style, **s, b=wrong)
    question = w(_PHRASE[should][0] + " 할 것을 잘못하여 " + _PHRASE[did][1] + " {b|이/가} <되었습니다|되었어요>. "
                 "바르게 계산하면 <얼마입니까?|얼마예요?>")
    undo = "-" if did == "더" else "+"
    steps = [w("잘못 계산한 식은 {e|.}", e=f"□ {_SIGN[did]} {a} = {wrong}"),
             w("그러므로 어떤 수는 {e|.}", e=f"□ = {wrong} {undo} {a} = {x}"),
             w("바르게 계산하면 {e|.}", e=f"{x} {_SIGN[should]} {a} = {right}")]
    return Worked(question, steps, right, "")


def _three_ops_sample(rng):
    k, m, b = rng.randint(2, 9), rng.randint(2, 9), rng.randint(2, 40)
    x_times_k_minus_a = b * m
    a = rng.randint(1, 30)
    while (x_times_k_minus_a + a) % k:  # choose a so that the unknown comes out whole
        a += 1
    return {"k": k, "a": a, "m": m, "b": b}


def _three_ops_build(s, style):
    k, a, m, b = s["k"], s["a"], s["m"], s["b"]
    x = (b * m + a) // k
    w = writer(style, **s)
    question = w("어떤 수에 {k|을/를} 곱한 다음 {a|을/를} 빼고, 그 결과를 {m|(으)로} 나누었더니 {b|이/가} "
                 "<되었습니다|되었어요>. 어떤 수는 <얼마입니까?|얼마예요?>")
    steps = [w("어떤 수를 □라고 하면 {e|.}", e=f"(□ × {k} - {a}) ÷ {m} = {b}"),
             w("나누기 전의 수는 {e|.}", e=f"□ × {k} - {a} = {b} × {m} = {b * m}"),
             w("{a|을/를} 빼기 전의 수는 {e|.}", e=f"□ × {k} = {b * m} + {a} = {b * m + a}"),
             w("따라서 {e|.}", e=f"□ = {b * m + a} ÷ {k} = {x}")]
    return Worked(question, steps, x, "")


def _times_more_sample(rng):
    return {"names": "·".join(rng.sample(NAMES, 2)), "item": pick(rng, SHAREABLE).noun, "k": rng.randint(2, 5),
            "d": rng.randint(1, 15), "x": rng.randint(3, 40)}


def _times_more_build(s, style):
    (first, second), k, d, x = s["names"].split("·"), s["k"], s["d"], s["x"]
    total = x + k * x + d
    c = COUNTER[s["item"]]
    w = writer(style, **s, n1=first, n2=second, c=c, total=total)
    question = w("{n1}의 {item} 수는 {n2}의 {item} 수의 {k}배보다 {d}{c} <많습니다|많아요>. 두 사람의 {item|을/를} 합하면 "
                 "{total}{c|.} {n2|은/는} {item|을/를} 몇 {c} 가지고 <있습니까?|있어요?>")
    steps = [w("{n2}의 {item} 수를 □라고 하면 {n1}의 {item} 수는 □ × {k} + {d|.}"),
             w("두 사람의 것을 합하면 {e|.}", e=f"□ + □ × {k} + {d} = □ × {k + 1} + {d} = {total}"),
             w("양쪽에서 {d|을/를} 빼면 {e|.}", e=f"□ × {k + 1} = {total} - {d} = {total - d}"),
             w("따라서 {e|.}", e=f"□ = {total - d} ÷ {k + 1} = {x}")]
    return Worked(question, steps, x, c)


def _with_operations(s: dict) -> dict:
    """The numbers and the operations: 더 or 빼, 곱 or 나누 make another exercise (Template.exercise)."""
    return {**numbers(s), **{key: s[key] for key in ("op", "should", "did") if key in s}}


TEMPLATES = (
    Template("average/1", 1, _subjects_sample, _subjects_build),
    Template("average/2", 1, _collected_sample, _collected_build),
    Template("average/3", 2, _records_sample, _records_build),
    Template("average/4", 3, _missing_sample, _missing_build),
    Template("average/5", 3, _two_classes_sample, _two_classes_build),
    Template("equation/1", 1, _add_sample, _add_build, exercise=_with_operations),
    Template("equation/2", 1, _times_sample, _times_build, exercise=_with_operations),
    Template("equation/3", 2, _add_then_times_sample, _add_then_times_build, exercise=_with_operations),
    Template("equation/4", 2, _mistake_sample, _mistake_build, exercise=_with_operations),
    Template("equation/5", 3, _three_ops_sample, _three_ops_build),
    Template("equation/6", 3, _times_more_sample, _times_more_build),
)
