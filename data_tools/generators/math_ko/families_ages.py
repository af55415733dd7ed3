"""Age problems: differences, sums, "몇 년 뒤에 몇 배", three people together. Ages stay plausible:
children 3-15, parents 24-40 years older, grandparents under 90, nobody's age negative."""

from __future__ import annotations

from data_tools.generators.math_ko.lexicon import NAMES, PARENTS, RELATIVES
from data_tools.generators.math_ko.wording import Template, Worked, pick, writer

RELATIVE_NAMES = tuple(RELATIVES)


def _relative(rng) -> dict:
    relative = pick(rng, RELATIVE_NAMES)
    return {"rel": relative, "gap": rng.randint(*RELATIVES[relative])}


def _older_sample(rng):
    return {"name": pick(rng, NAMES), "age": rng.randint(4, 15), **_relative(rng)}


def _older_build(s, style):
    answer = s["age"] + s["gap"]
    w = writer(style, **s)
    question = w("{name|은/는} 올해 {age}<살입니다|살이에요>. {name}의 {rel|은/는} {name}보다 {gap}살 <많습니다|많아요>. "
                 "{rel|은/는} 올해 몇 <살입니까?|살이에요?>")
    steps = [w("{rel}의 나이는 {name}의 나이에 {gap}살을 더하면 <됩니다|돼요>."),
             w("따라서 {rel|은/는} 올해 {e|.}", e=f"{s['age']} + {s['gap']} = {answer}(살)")]
    return Worked(question, steps, answer, "살")


def _younger_sample(rng):
    age = rng.randint(5, 15)
    return {"name": pick(rng, NAMES), "age": age, "gap": rng.randint(1, min(6, age - 2)),
            "sib": pick(rng, ("동생", "사촌 동생"))}


def _younger_build(s, style):
    answer = s["age"] - s["gap"]
    w = writer(style, **s)
    question = w("{name|은/는} 올해 {age}살이고, {name}의 {sib|은/는} {name}보다 {gap}살 <어립니다|어려요>. "
                 "{sib|은/는} 올해 몇 <살입니까?|살이에요?>")
    steps = [w("{sib}의 나이는 {name}의 나이에서 {gap}살을 빼면 <됩니다|돼요>."),
             w("따라서 {sib|은/는} 올해 {e|.}", e=f"{s['age']} - {s['gap']} = {answer}(살)")]
    return Worked(question, steps, answer, "살")


def _later_sample(rng):
    return {"name": pick(rng, NAMES), "age": rng.randint(4, 15), **_relative(rng), "years": rng.randint(2, 15)}


def _later_build(s, style):
    now = s["age"] + s["gap"]
    answer = now + s["years"]
    w = writer(style, **s)
    question = w("{name|은/는} 올해 {age}살이고, {name}의 {rel|은/는} {name}보다 {gap}살 <많습니다|많아요>. "
                 "{years}년 뒤에 {rel|은/는} 몇 살이 <됩니까?|돼요?>")
    steps = [w("올해 {rel}의 나이는 {e|.}", e=f"{s['age']} + {s['gap']} = {now}(살)"),
             w("{years}년 뒤에는 {years}살을 더 먹으므로 {e|.}", e=f"{now} + {s['years']} = {answer}(살)")]
    return Worked(question, steps, answer, "살")


def _sum_gap_sample(rng):
    return {"name": pick(rng, NAMES), "age": rng.randint(4, 15), **_relative(rng)}


def _sum_gap_build(s, style):
    total = 2 * s["age"] + s["gap"]
    w = writer(style, **s, total=total)
    question = w("{name|과/와} {name}의 {rel}의 나이를 더하면 {total}<살입니다|살이에요>. {rel|은/는} {name}보다 "
                 "{gap}살 <많습니다|많아요>. {name|은/는} 올해 몇 <살입니까?|살이에요?>")
    steps = [w("두 사람의 나이의 합에서 나이 차를 빼면 {name}의 나이의 2배가 <남습니다|남아요>."),
             w("합에서 차를 빼면 {e|.}", e=f"{total} - {s['gap']} = {2 * s['age']}(살)"),
             w("따라서 {name}의 나이는 {e|.}", e=f"{2 * s['age']} ÷ 2 = {s['age']}(살)")]
    return Worked(question, steps, s["age"], "살")


def _times_later_sample(rng):
    while True:  # choose the answer first, then keep only parents 24-40 years older than the child
        child, years, times = rng.randint(3, 15), rng.randint(1, 20), rng.randint(2, 4)
        parent = times * (child + years) - years
        if 24 <= parent - child <= 40:
            return {"name": pick(rng, NAMES), "rel": pick(rng, PARENTS), "child": child, "parent": parent,
                    "times": times}


def _times_later_build(s, style):
    gap = s["parent"] - s["child"]
    then = gap // (s["times"] - 1)
    w = writer(style, **s, gap=gap)
    question = w("올해 {name|은/는} {child}살이고 {name}의 {rel|은/는} {parent}<살입니다|살이에요>. 몇 년 뒤에 {rel}의 "
                 "나이가 {name}의 나이의 {times}배가 <됩니까?|될까요?>")
    steps = [w("두 사람의 나이 차는 몇 년이 지나도 {e|.}", e=f"{s['parent']} - {s['child']} = {gap}(살)")]
    if s["times"] == 2:
        steps.append(w("{rel}의 나이가 {name}의 2배가 되면 나이 차 {gap}살이 그때 {name}의 나이와 <같습니다|같아요>."))
    else:
        steps += [w("{rel}의 나이가 {name}의 {times}배일 때, 나이 차 {gap}살은 {name}의 나이의 {e|.}",
                    e=f"{s['times']} - 1 = {s['times'] - 1}(배)"),
                  w("그때 {name}의 나이는 {e|.}", e=f"{gap} ÷ {s['times'] - 1} = {then}(살)")]
    steps += [
              w("따라서 {e} 뒤<입니다|예요>.", e=f"{then} - {s['child']} = {then - s['child']}(년)")]
    return Worked(question, steps, then - s["child"], "년")


def _three_sample(rng):
    age = rng.randint(6, 15)
    return {"name": pick(rng, NAMES), "age": age, "young": rng.randint(1, min(6, age - 3)), **_relative(rng)}


def _three_build(s, style):
    sib, rel = s["age"] - s["young"], s["age"] + s["gap"]
    answer = s["age"] + sib + rel
    w = writer(style, **s)
    question = w("{name|은/는} 올해 {age}<살입니다|살이에요>. {name}의 동생은 {name}보다 {young}살 어리고, {name}의 "
                 "{rel|은/는} {name}보다 {gap}살 <많습니다|많아요>. 세 사람의 나이를 모두 더하면 몇 <살입니까?|살이에요?>")
    steps = [w("동생의 나이는 {e|.}", e=f"{s['age']} - {s['young']} = {sib}(살)"),
             w("{rel}의 나이는 {e|.}", e=f"{s['age']} + {s['gap']} = {rel}(살)"),
             w("세 사람의 나이를 더하면 {e|.}", e=f"{s['age']} + {sib} + {rel} = {answer}(살)")]
    return Worked(question, steps, answer, "살")


TEMPLATES = (
    Template("ages/1", 1, _older_sample, _older_build),
    Template("ages/2", 1, _younger_sample, _younger_build),
    Template("ages/3", 2, _later_sample, _later_build),
    Template("ages/4", 2, _sum_gap_sample, _sum_gap_build),
    Template("ages/5", 3, _times_later_sample, _times_later_build),
    Template("ages/6", 3, _three_sample, _three_build),
)
