"""Counting problems: sharing (equal shares, remainders, bags and boxes, a share as a fraction) and
multi-step arithmetic (gain and loss, boxes and loose ones, empty chairs, animal legs, pages left)."""

from __future__ import annotations

from fractions import Fraction

from data_tools.generators.math_ko.lexicon import ANIMALS, COUNTER, LEGS, NAMES, SHAREABLE
from data_tools.generators.math_ko.wording import Template, Worked, pick, writer

SHAREABLE_NOUNS = tuple(t.noun for t in SHAREABLE)


def _things(rng) -> dict:
    return {"name": pick(rng, NAMES), "item": pick(rng, SHAREABLE_NOUNS)}


def _exact_sample(rng):
    k = rng.randint(2, 9)
    return {**_things(rng), "n": k * rng.randint(2, 12), "k": k}


def _exact_build(s, style):
    answer = s["n"] // s["k"]
    w = writer(style, **s, c=COUNTER[s["item"]])
    question = w("{name|은/는} {item} {n}{c|을/를} 친구 {k}명에게 똑같이 나누어 주려고 <합니다|해요>. "
                 "한 명에게 몇 {c}씩 줄 수 <있습니까?|있어요?>")
    steps = [w("{n}{c|을/를} {k}명에게 똑같이 나누므로 나눗셈을 <합니다|해요>."),
             w("한 명에게 주는 {item|은/는} {e|.}", e=f"{s['n']} ÷ {s['k']} = {answer}({COUNTER[s['item']]})")]
    return Worked(question, steps, answer, COUNTER[s["item"]])


def _leftover_sample(rng):
    while True:
        n, k = rng.randint(20, 99), rng.randint(3, 9)
        if n % k:
            return {**_things(rng), "n": n, "k": k}


def _leftover_build(s, style):
    q, r = divmod(s["n"], s["k"])
    c = COUNTER[s["item"]]
    w = writer(style, **s, c=c, q=q, r=r, left=f"{r}{c}")
    question = w("{name|은/는} {item} {n}{c|을/를} 친구 {k}명에게 똑같이 나누어 주려고 <합니다|해요>. 한 명에게 될 수 있는 "
                 "대로 많이 주면 {item|은/는} 몇 {c|이/가} <남습니까?|남아요?>")
    steps = [w("{e|.}", e=f"{s['n']} ÷ {s['k']} = {q} … {r}"),
             w("한 명에게 {q}{c}씩 주고 {left|이/가} <남습니다|남아요>.")]
    return Worked(question, steps, r, c)


def _bags_sample(rng):
    while True:
        n, k = rng.randint(20, 150), rng.randint(3, 12)
        if n % k and n // k >= 2:
            return {**_things(rng), "n": n, "k": k, "bag": pick(rng, ("봉지", "상자", "바구니", "통"))}


def _bags_build(s, style):
    q, r = divmod(s["n"], s["k"])
    c = COUNTER[s["item"]]
    w = writer(style, **s, c=c, q=q, r=r, bags=f"{q}{s['bag']}")
    question = w("{name|은/는} {item} {n}{c|을/를} 한 {bag}에 {k}{c}씩 <담았습니다|담았어요>. {k}{c|이/가} 가득 담긴 {bag|은/는} "
                 "몇 {bag|?}")
    steps = [w("{e|.}", e=f"{s['n']} ÷ {s['k']} = {q} … {r}"),
             w("남은 {r}{c|(으)로}는 한 {bag|을/를} 채울 수 없으므로 가득 담긴 {bag|은/는} {bags|.}")]
    return Worked(question, steps, q, s["bag"])


def _boxes_sample(rng):
    while True:
        n, k = rng.randint(30, 200), rng.randint(4, 15)
        if n % k:
            return {**_things(rng), "n": n, "k": k}


def _boxes_build(s, style):
    q, r = divmod(s["n"], s["k"])
    c = COUNTER[s["item"]]
    w = writer(style, **s, c=c, q=q, r=r, q1=q + 1)
    question = w("{name|은/는} {item} {n}{c|을/를} 한 상자에 {k}{c}씩 모두 담으려고 <합니다|해요>. "
                 "상자는 적어도 몇 개 <필요합니까?|필요해요?>")
    steps = [w("{e|.}", e=f"{s['n']} ÷ {s['k']} = {q} … {r}"),
             w("{q}상자에 {k}{c}씩 담으면 {r}{c|이/가} <남습니다|남아요>."),
             w("남은 {item}도 담아야 하므로 상자는 {e|이/가} <필요합니다|필요해요>.", e=f"{q} + 1 = {q + 1}(개)")]
    return Worked(question, steps, q + 1, "개")


def _pooled_sample(rng):
    while True:
        a, b, k = rng.randint(10, 60), rng.randint(10, 60), rng.randint(3, 8)
        if (a + b) % k:
            return {"names": "·".join(rng.sample(NAMES, 2)), "item": pick(rng, SHAREABLE_NOUNS), "a": a, "b": b, "k": k}


def _pooled_build(s, style):
    (first, second), c = s["names"].split("·"), COUNTER[s["item"]]
    total = s["a"] + s["b"]
    q, r = divmod(total, s["k"])
    w = writer(style, **s, n1=first, n2=second, c=c, q=q, r=r, total=total)
    question = w("{n1|은/는} {item} {a}{c|을/를}, {n2|은/는} {b}{c|을/를} 가지고 <있습니다|있어요>. 두 사람의 {item|을/를} "
                 "모아 친구 {k}명이 똑같이 나누어 가지고, 남는 것은 선생님께 드리기로 <했습니다|했어요>. "
                 "선생님께 드리는 {item|은/는} 몇 {c|?}")
    steps = [w("두 사람의 {item|은/는} 모두 {e|.}", e=f"{s['a']} + {s['b']} = {total}({c})"),
             w("{k}명이 똑같이 나누면 {e|.}", e=f"{total} ÷ {s['k']} = {q} … {r}"),
             w("한 명이 {q}{c}씩 가지고 {r}{c|이/가} 남으므로, 선생님께 드리는 {item|은/는} {r}{c|.}")]
    return Worked(question, steps, r, c)


# Things shared as a fraction: (noun, counter or unit, how it is eaten or used)
PIECES = (("피자", "판", "먹으면", "먹는"), ("수박", "통", "먹으면", "먹는"), ("끈", "m", "가지면", "갖는"),
          ("주스", "L", "마시면", "마시는"))
_PIECE = {p[0]: p for p in PIECES}


def _fraction_sample(rng):
    k = rng.randint(2, 12)
    return {"name": pick(rng, NAMES), "item": pick(rng, PIECES)[0], "a": rng.randint(1, k - 1), "k": k}


def _fraction_build(s, style):
    _, unit, verb, verb_that = _PIECE[s["item"]]
    share = Fraction(s["a"], s["k"])
    answer = f"{share.numerator}/{share.denominator}"  # asked as a fraction, so never written as a decimal
    w = writer(style, **s, unit=unit, verb=verb, that=verb_that, answer=answer, whole=f"{s['a']}{unit}", q=f"몇 {unit}")
    question = w("{name}네 모둠 {k}명이 {item} {whole|을/를} 똑같이 나누어 {verb} 한 명이 {that} {item|은/는} {q|?} "
                 "기약분수로 <답하십시오|답하세요>.")
    steps = [w("{whole|을/를} {k}명이 똑같이 나누므로 {e|.}", e=f"{s['a']} ÷ {s['k']} = {s['a']}/{s['k']}")]
    if share.denominator != s["k"]:
        steps.append(w("분자와 분모를 {g|(으)로} 나누어 약분하면 {answer|.}", g=s["k"] // share.denominator))
    else:
        steps.append(w("분자와 분모의 공약수가 1뿐이므로 {answer|은/는} 이미 기약분수<입니다|예요>."))
    return Worked(question, steps, answer, unit)


def _gain_sample(rng):
    return {**_things(rng), "a": rng.randint(5, 40), "b": rng.randint(2, 30),
            "from": pick(rng, ("친구에게서", "할머니께", "선생님께", "삼촌에게서", "이웃집 아주머니께"))}


def _gain_build(s, style):
    c = COUNTER[s["item"]]
    answer = s["a"] + s["b"]
    w = writer(style, **s, c=c, giver=s["from"])
    question = w("{name|은/는} {item} {a}{c|을/를} 가지고 있었는데, {giver} {b}{c|을/를} 더 <받았습니다|받았어요>. "
                 "{name|이/가} 가진 {item|은/는} 모두 몇 {c|?}")
    steps = [w("처음 가진 {a}{c}에 받은 {b}{c|을/를} <더합니다|더해요>."),
             w("모두 {e|.}", e=f"{s['a']} + {s['b']} = {answer}({c})")]
    return Worked(question, steps, answer, c)


def _give_take_sample(rng):
    a = rng.randint(20, 90)
    return {**_things(rng), "a": a, "b": rng.randint(2, a - 5), "d": rng.randint(2, 40)}


def _give_take_build(s, style):
    c = COUNTER[s["item"]]
    left = s["a"] - s["b"]
    w = writer(style, **s, c=c)
    question = w("{name|은/는} {item} {a}{c|을/를} 가지고 <있었습니다|있었어요>. 그중 {b}{c|을/를} 동생에게 주고, 친구에게서 "
                 "{d}{c|을/를} <받았습니다|받았어요>. 지금 {name|이/가} 가진 {item|은/는} 몇 {c|?}")
    steps = [w("동생에게 주고 남은 {item|은/는} {e|.}", e=f"{s['a']} - {s['b']} = {left}({c})"),
             w("친구에게서 받은 것을 더하면 {e|.}", e=f"{left} + {s['d']} = {left + s['d']}({c})")]
    return Worked(question, steps, left + s["d"], c)


def _packs_sample(rng):
    return {**_things(rng), "m": rng.randint(6, 30), "k": rng.randint(3, 12), "r": rng.randint(1, 5),
            "pack": pick(rng, ("상자", "봉지", "묶음"))}


def _packs_build(s, style):
    c = COUNTER[s["item"]]
    packed = s["m"] * s["k"]
    w = writer(style, **s, c=c, loose=f"{s['r']}{c}")
    question = w("{name}네 집에 {item|이/가} 한 {pack}에 {m}{c}씩 {k}{pack} 있고, 낱개로 {loose|이/가} 더 <있습니다|있어요>. "
                 "{item|은/는} 모두 몇 {c|?}")
    steps = [w("{pack}에 든 {item|은/는} {e|.}", e=f"{s['m']} × {s['k']} = {packed}({c})"),
             w("낱개를 더하면 {e|.}", e=f"{packed} + {s['r']} = {packed + s['r']}({c})")]
    return Worked(question, steps, packed + s["r"], c)


def _chairs_sample(rng):
    m, k = rng.randint(5, 15), rng.randint(4, 12)
    return {"place": pick(rng, ("강당", "교실", "음악실", "도서관", "체육관")), "m": m, "k": k,
            "n": rng.randint(m * k // 2, m * k - 1)}


def _chairs_build(s, style):
    seats = s["m"] * s["k"]
    w = writer(style, **s)
    question = w("{place}에 의자가 한 줄에 {m}개씩 {k}줄 놓여 <있습니다|있어요>. 학생 {n}명이 한 의자에 한 명씩 앉으면 "
                 "빈 의자는 몇 <개입니까?|개예요?>")
    steps = [w("의자는 모두 {e|.}", e=f"{s['m']} × {s['k']} = {seats}(개)"),
             w("학생이 앉은 의자를 빼면 빈 의자는 {e|.}", e=f"{seats} - {s['n']} = {seats - s['n']}(개)")]
    return Worked(question, steps, seats - s["n"], "개")


TWO_LEGGED = tuple(a.noun for a in ANIMALS if LEGS.get(a.noun) == 2)
FOUR_LEGGED = tuple(a.noun for a in ANIMALS if LEGS.get(a.noun) == 4)


def _legs_sample(rng):
    return {"place": pick(rng, ("농장", "목장", "할머니 댁 마당", "동물 농장")), "bird": pick(rng, TWO_LEGGED),
            "x": rng.randint(3, 40), "beast": pick(rng, FOUR_LEGGED), "y": rng.randint(3, 40)}


def _legs_build(s, style):
    two, four = 2 * s["x"], 4 * s["y"]
    w = writer(style, **s, c="마리")
    question = w("{place}에 {bird} {x}{c|과/와} {beast} {y}{c|이/가} <있습니다|있어요>. "
                 "{bird|과/와} {beast}의 다리는 모두 몇 <개입니까?|개예요?>")
    steps = [w("{bird|은/는} 다리가 2개이므로 {bird}의 다리는 {e|.}", e=f"2 × {s['x']} = {two}(개)"),
             w("{beast|은/는} 다리가 4개이므로 {beast}의 다리는 {e|.}", e=f"4 × {s['y']} = {four}(개)"),
             w("모두 더하면 {e|.}", e=f"{two} + {four} = {two + four}(개)")]
    return Worked(question, steps, two + four, "개")


def _pages_sample(rng):
    while True:
        d1, p1, d2, p2 = rng.randint(2, 7), rng.randint(5, 30), rng.randint(2, 7), rng.randint(5, 30)
        total = 10 * rng.randint(10, 40)
        if p1 != p2 and total > d1 * p1 + d2 * p2:  # the pace changes, or it is one stretch of days
            return {"name": pick(rng, NAMES), "total": total, "d1": d1, "p1": p1, "d2": d2, "p2": p2}


def _pages_build(s, style):
    a, b = s["d1"] * s["p1"], s["d2"] * s["p2"]
    left = s["total"] - a - b
    w = writer(style, **s)
    question = w("{name|은/는} {total}쪽짜리 책을 읽고 <있습니다|있어요>. 처음 {d1}일 동안은 하루에 {p1}쪽씩, 그다음 {d2}일 동안은 "
                 "하루에 {p2}쪽씩 <읽었습니다|읽었어요>. 책을 다 읽으려면 몇 쪽을 더 읽어야 <합니까?|해요?>")
    steps = [w("처음 {d1}일 동안 읽은 쪽수는 {e|.}", e=f"{s['p1']} × {s['d1']} = {a}(쪽)"),
             w("그다음 {d2}일 동안 읽은 쪽수는 {e|.}", e=f"{s['p2']} × {s['d2']} = {b}(쪽)"),
             w("지금까지 읽은 쪽수는 {e|.}", e=f"{a} + {b} = {a + b}(쪽)"),
             w("남은 쪽수는 {e|.}", e=f"{s['total']} - {a + b} = {left}(쪽)")]
    return Worked(question, steps, left, "쪽")


TEMPLATES = (
    Template("sharing/1", 1, _exact_sample, _exact_build),
    Template("sharing/2", 2, _leftover_sample, _leftover_build),
    Template("sharing/3", 2, _bags_sample, _bags_build),
    Template("sharing/4", 2, _fraction_sample, _fraction_build),
    Template("sharing/5", 3, _boxes_sample, _boxes_build),
    Template("sharing/6", 3, _pooled_sample, _pooled_build),
    Template("multistep/1", 1, _gain_sample, _gain_build),
    Template("multistep/2", 2, _give_take_sample, _give_take_build),
    Template("multistep/3", 2, _packs_sample, _packs_build),
    Template("multistep/4", 2, _chairs_sample, _chairs_build),
    Template("multistep/5", 3, _legs_sample, _legs_build),
    Template("multistep/6", 3, _pages_sample, _pages_build),
)
