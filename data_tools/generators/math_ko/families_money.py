"""Money problems: shopping (totals, change, what is left) and percent (shares, savings, discounts, a
discount on a discount). Prices come from the lexicon's real price ranges, every amount is a multiple of
10 원, and answers are exact integers (a percent answer may be an exact decimal such as 87.5)."""

from __future__ import annotations

import random
from fractions import Fraction

from data_tools.generators.math_ko.lexicon import NAMES, SHOP_ITEMS, SHOP_OF, SHOPS, SOLD, SUBJECTS
from data_tools.generators.math_ko.wording import Template, Worked, num, pick, won, writer

PAYMENTS = (1000, 5000, 10000, 20000, 30000, 50000, 100000, 200000, 300000)  # what a customer hands over
CHEAP = tuple((shop, thing) for shop, thing in SHOP_ITEMS if thing.high <= 5000)  # small numbers for level 1
PRICEY = tuple((shop, thing) for shop, thing in SHOP_ITEMS
               if any(p % 1000 == 0 and p >= 3000 for p in thing.prices()))  # discounts on round prices


def _count(rng: random.Random, noun: str) -> int:
    """How many to buy: up to 9 cheap things, but only two or three 12만 원 shoes."""
    return rng.randint(2, max(2, min(9, 150000 // SOLD[noun].high)))


def _payment_above(rng: random.Random, total: int) -> int:
    """The smallest or next-smallest note or sum a customer would hand over for `total`."""
    above = [p for p in PAYMENTS if p > total] or [(total // 100000 + 1) * 100000]  # two pairs of shoes
    return above[min(rng.randint(0, 1), len(above) - 1)]


def _buy(rng: random.Random, things=SHOP_ITEMS) -> dict:
    _, thing = pick(rng, things)
    return {"item": thing.noun, "price": pick(rng, thing.prices()), "n": _count(rng, thing.noun)}


def _words(s: dict, style: str, **more):
    """A writer with the slots, the counters and the shop filled in and money written 1,200원."""
    extra = {k: won(v) for k, v in s.items() if k.startswith(("price", "money", "paid"))}
    for key in ("item", "item2"):
        if key in s:
            extra["c" + key[4:]] = SOLD[s[key]].counter
    shop = SHOP_OF[s["item"]] if "item" in s else ""
    return writer(style, **{**s, **extra, "shop": shop, **more})


def _total_sample(rng):
    return {"name": pick(rng, NAMES), **_buy(rng, CHEAP), "n": rng.randint(2, 9)}


def _total_build(s, style):
    total = s["price"] * s["n"]
    w = _words(s, style)
    question = w("{shop}에서 {item|은/는} 한 {c}에 {price|.} {name|이/가} {item} {n}{c|을/를} 사려면 "
                 "얼마가 <필요합니까?|필요해요?>")
    steps = [w("{item} 한 {c}의 값이 {price}이고, {n}{c|을/를} <삽니다|사요>."),
             w("필요한 돈은 {e|.}", e=f"{num(s['price'])} × {s['n']} = {num(total)}(원)")]
    return Worked(question, steps, total, "원")


def _left_sample(rng):
    _, thing = pick(rng, CHEAP)
    price = pick(rng, thing.prices())
    return {"name": pick(rng, NAMES), "item": thing.noun, "price": price, "money": _payment_above(rng, price)}


def _left_build(s, style):
    left = s["money"] - s["price"]
    w = _words(s, style)
    question = w("{name|은/는} {money|을/를} 가지고 <있습니다|있어요>. {shop}에서 {price}짜리 {item} 한 {c|을/를} "
                 "사면 남는 돈은 <얼마입니까?|얼마예요?>")
    steps = [w("가진 돈 {money}에서 {item} 값 {price|을/를} <뺍니다|빼요>."),
             w("남는 돈은 {e|.}", e=f"{num(s['money'])} - {num(s['price'])} = {num(left)}(원)")]
    return Worked(question, steps, left, "원")


def _change_sample(rng):
    buy = _buy(rng)
    return {"name": pick(rng, NAMES), **buy, "paid": _payment_above(rng, buy["price"] * buy["n"])}


def _change_build(s, style):
    total = s["price"] * s["n"]
    w = _words(s, style)
    question = w("{name|은/는} {shop}에서 한 {c}에 {price}인 {item|을/를} {n}{c} 사고 {paid|을/를} <냈습니다|냈어요>. "
                 "거스름돈으로 얼마를 받아야 <합니까?|해요?>")
    steps = [w("{item} {n}{c}의 값은 {e|.}", e=f"{num(s['price'])} × {s['n']} = {num(total)}(원)"),
             w("거스름돈은 낸 돈에서 물건값을 뺀 {e|.}", e=f"{num(s['paid'])} - {num(total)} = {num(s['paid'] - total)}(원)")]
    return Worked(question, steps, s["paid"] - total, "원")


def _two_items(rng) -> dict:
    shop = pick(rng, tuple(SHOPS))
    first, second = rng.sample(SHOPS[shop], 2)
    return {"item": first.noun, "price": pick(rng, first.prices()), "n": _count(rng, first.noun),
            "item2": second.noun, "price2": pick(rng, second.prices()), "n2": _count(rng, second.noun)}


def _two_items_sample(rng):
    return {"name": pick(rng, NAMES), **_two_items(rng)}


def _two_items_steps(s, w) -> tuple[list[str], int]:
    a, b = s["price"] * s["n"], s["price2"] * s["n2"]
    steps = [w("{item} {n}{c}의 값은 {e|.}", e=f"{num(s['price'])} × {s['n']} = {num(a)}(원)"),
             w("{item2} {n2}{c2}의 값은 {e|.}", e=f"{num(s['price2'])} × {s['n2']} = {num(b)}(원)"),
             w("두 가지를 합하면 {e|.}", e=f"{num(a)} + {num(b)} = {num(a + b)}(원)")]
    return steps, a + b


def _two_items_build(s, style):
    w = _words(s, style)
    question = w("{name|은/는} {shop}에서 {item} {n}{c|과/와} {item2} {n2}{c2|을/를} <샀습니다|샀어요>. "
                 "{item|은/는} 한 {c}에 {price}, {item2|은/는} 한 {c2}에 {price2|.} 모두 얼마를 <내야 합니까?|내야 해요?>")
    steps, total = _two_items_steps(s, w)
    return Worked(question, steps, total, "원")


def _two_items_left_sample(rng):
    s = _two_items(rng)
    total = s["price"] * s["n"] + s["price2"] * s["n2"]
    return {"name": pick(rng, NAMES), **s, "money": _payment_above(rng, total)}


def _two_items_left_build(s, style):
    w = _words(s, style)
    question = w("{name|은/는} {money|을/를} 가지고 {shop}에 <갔습니다|갔어요>. 한 {c}에 {price}인 {item} {n}{c|과/와} "
                 "한 {c2}에 {price2}인 {item2} {n2}{c2|을/를} 사면 남는 돈은 <얼마입니까?|얼마예요?>")
    steps, total = _two_items_steps(s, w)
    left = s["money"] - total
    steps.append(w("남는 돈은 {e|.}", e=f"{num(s['money'])} - {num(total)} = {num(left)}(원)"))
    return Worked(question, steps, left, "원")


def _saved_half_sample(rng):
    while True:  # half of what is left must still be a multiple of 10 원
        buy, money = _buy(rng, CHEAP), pick(rng, (5000, 10000, 20000, 30000, 50000))
        if money > buy["price"] * buy["n"] and (money - buy["price"] * buy["n"]) % 20 == 0:
            return {"name": pick(rng, NAMES), **buy, "money": money}


def _saved_half_build(s, style):
    total = s["price"] * s["n"]
    left = s["money"] - total
    w = _words(s, style)
    question = w("{name|은/는} 용돈으로 {money|을/를} <받았습니다|받았어요>. {shop}에서 한 {c}에 {price}인 {item|을/를} "
                 "{n}{c} 사고, 남은 돈의 절반을 <저금했습니다|저금했어요>. 저금한 돈은 <얼마입니까?|얼마예요?>")
    steps = [w("{item} {n}{c}의 값은 {e|.}", e=f"{num(s['price'])} × {s['n']} = {num(total)}(원)"),
             w("사고 남은 돈은 {e|.}", e=f"{num(s['money'])} - {num(total)} = {num(left)}(원)"),
             w("저금한 돈은 그 절반이므로 {e|.}", e=f"{num(left)} ÷ 2 = {num(left // 2)}(원)")]
    return Worked(question, steps, left // 2, "원")


# (statement, 해요체 statement, the same as a relative clause) for "n명 중 p%가 ...".
TRAITS = (("안경을 썼습니다", "안경을 썼어요", "안경을 쓴"),
          ("자전거를 탈 수 있습니다", "자전거를 탈 수 있어요", "자전거를 탈 수 있는"),
          ("반려동물을 키웁니다", "반려동물을 키워요", "반려동물을 키우는"),
          ("아침에 우유를 마십니다", "아침에 우유를 마셔요", "아침에 우유를 마시는"),
          ("걸어서 학교에 옵니다", "걸어서 학교에 와요", "걸어서 학교에 오는"),
          ("수영을 배웁니다", "수영을 배워요", "수영을 배우는"),
          ("피아노를 칠 수 있습니다", "피아노를 칠 수 있어요", "피아노를 칠 수 있는"))
_TRAIT = {relative: (formal, plain) for formal, plain, relative in TRAITS}


def _share_sample(rng):
    group, low, high = pick(rng, (("반", 20, 40), (f"학교 {rng.randint(1, 6)}학년", 60, 240)))
    while True:
        n, p = rng.randint(low, high), pick(rng, (10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90))
        if n * p % 100 == 0:
            return {"name": pick(rng, NAMES), "group": group, "n": n, "p": p, "trait": pick(rng, TRAITS)[2]}


def _share_build(s, style):
    formal, plain = _TRAIT[s["trait"]]
    w = writer(style, **s, pct=f"{s['p']}%", verb=formal if style == "formal" else plain)
    question = w("{name}네 {group} 학생 {n}명 중 {pct|이/가} {verb}. {trait} 학생은 몇 <명입니까?|명이에요?>")
    answer = s["n"] * s["p"] // 100
    steps = [w("{n}명의 {pct|은/는} {n} × {p} ÷ 100으로 <구합니다|구해요>."),
             w("따라서 {trait} 학생은 {e|.}", e=f"{s['n']} × {s['p']} ÷ 100 = {answer}(명)")]
    return Worked(question, steps, answer, "명")


def _savings_sample(rng):
    return {"name": pick(rng, NAMES), "money": 1000 * rng.randint(5, 50), "p": 5 * rng.randint(1, 10)}


def _savings_build(s, style):
    answer = s["money"] * s["p"] // 100
    w = _words(s, style, pct=f"{s['p']}%")
    question = w("{name|은/는} 이번 달 용돈 {money} 중 {pct|을/를} <저금했습니다|저금했어요>. 저금한 돈은 <얼마입니까?|얼마예요?>")
    steps = [w("{money}의 {pct|은/는} {money_n} × {p} ÷ 100으로 <구합니다|구해요>.", money_n=num(s["money"])),
             w("저금한 돈은 {e|.}", e=f"{num(s['money'])} × {s['p']} ÷ 100 = {num(answer)}(원)")]
    return Worked(question, steps, answer, "원")


def _round_price(rng, things) -> dict:
    _, thing = pick(rng, things)
    return {"item": thing.noun, "price": pick(rng, tuple(p for p in thing.prices() if p % 1000 == 0 and p >= 3000))}


def _discount_sample(rng):
    return {**_round_price(rng, PRICEY), "p": 5 * rng.randint(1, 12)}


def _discount_build(s, style):
    cut = s["price"] * s["p"] // 100
    w = _words(s, style, pct=f"{s['p']}%")
    question = w("{shop}에서 정가가 {price}인 {item|을/를} {pct} 할인해서 <팔고 있습니다|팔고 있어요>. "
                 "할인된 가격은 <얼마입니까?|얼마예요?>")
    steps = [w("할인 금액은 정가의 {pct|(으)로} {e|.}", e=f"{num(s['price'])} × {s['p']} ÷ 100 = {num(cut)}(원)"),
             w("할인된 가격은 {e|.}", e=f"{num(s['price'])} - {num(cut)} = {num(s['price'] - cut)}(원)")]
    return Worked(question, steps, s["price"] - cut, "원")


def _score_sample(rng):
    n = pick(rng, (8, 10, 16, 20, 25, 40, 50, 80))  # k/n × 100 is then exact to 2 decimal places
    return {"name": pick(rng, NAMES), "subject": pick(rng, SUBJECTS), "n": n, "k": rng.randint(n // 2, n - 1)}


def _score_build(s, style):
    answer = Fraction(100 * s["k"], s["n"])
    w = writer(style, **s)
    question = w("{name|은/는} {subject} 시험 {n}문제 중 {k}문제를 <맞혔습니다|맞혔어요>. 맞힌 문제는 전체의 {q|?}", q="몇 %")
    steps = [w("전체 {n}문제 중 {k}문제를 맞혔으므로 맞힌 비율은 {f|.}", f=f"{s['k']}/{s['n']}"),
             w("백분율로 나타내면 {e|.}", e=f"{s['k']} ÷ {s['n']} × 100 = {num(answer)}(%)")]
    return Worked(question, steps, answer, "%")


def _double_discount_sample(rng):
    while True:
        s = {"name": pick(rng, NAMES), **_round_price(rng, PRICEY), "p": 5 * rng.randint(2, 8),
             "q": 5 * rng.randint(1, 4)}
        if s["price"] * (100 - s["p"]) * (100 - s["q"]) % 100000 == 0:  # every amount stays a multiple of 10 원
            return s


def _double_discount_build(s, style):
    first = s["price"] * (100 - s["p"]) // 100
    cut = first * s["q"] // 100
    w = _words(s, style, pct=f"{s['p']}%", pct2=f"{s['q']}%")
    question = w("{name|은/는} {shop}에서 정가가 {price}인 {item|을/를} {pct} 할인된 가격에 <샀습니다|샀어요>. "
                 "계산할 때 쿠폰으로 할인된 가격의 {pct2|을/를} 더 할인받았다면, {name|이/가} 낸 돈은 <얼마입니까?|얼마예요?>")
    steps = [w("먼저 {pct} 할인된 가격은 {e|.}", e=f"{num(s['price'])} × ({100} - {s['p']}) ÷ 100 = {num(first)}(원)"),
             w("쿠폰 할인 금액은 {e|.}", e=f"{num(first)} × {s['q']} ÷ 100 = {num(cut)}(원)"),
             w("낸 돈은 {e|.}", e=f"{num(first)} - {num(cut)} = {num(first - cut)}(원)"),
             w("정가에서 {pct|과/와} {pct2|을/를} 더한 만큼 할인한 것과는 다르다는 점에 <주의합니다|주의해요>.")]
    return Worked(question, steps, first - cut, "원")


def _books_sample(rng):
    while True:
        n, p, q = 100 * rng.randint(2, 30), pick(rng, (10, 20, 25, 30, 40, 50)), pick(rng, (10, 20, 25, 30, 40, 60))
        if n * (100 + p) % 100 == 0 and n * (100 + p) // 100 * q % 100 == 0:
            return {"name": pick(rng, NAMES), "n": n, "p": p, "q": q}


def _books_build(s, style):
    added = s["n"] * s["p"] // 100
    now = s["n"] + added
    answer = now * s["q"] // 100
    w = writer(style, **s, books=num(s["n"]), pct=f"{s['p']}%", pct2=f"{s['q']}%")
    question = w("{name}네 학교 도서관에는 책이 {books}권 <있었습니다|있었어요>. 올해 책이 {pct} 늘었고, 늘어난 뒤 "
                 "전체 책의 {pct2|이/가} 동화책<입니다|이에요>. 지금 도서관에 있는 동화책은 몇 <권입니까?|권이에요?>")
    steps = [w("늘어난 책은 {e|.}", e=f"{num(s['n'])} × {s['p']} ÷ 100 = {num(added)}(권)"),
             w("지금 있는 책은 {e|.}", e=f"{num(s['n'])} + {num(added)} = {num(now)}(권)"),
             w("그중 동화책은 {e|.}", e=f"{num(now)} × {s['q']} ÷ 100 = {num(answer)}(권)")]
    return Worked(question, steps, answer, "권")


TEMPLATES = (
    Template("shopping/1", 1, _total_sample, _total_build),
    Template("shopping/2", 1, _left_sample, _left_build),
    Template("shopping/3", 2, _change_sample, _change_build),
    Template("shopping/4", 2, _two_items_sample, _two_items_build),
    Template("shopping/5", 3, _two_items_left_sample, _two_items_left_build),
    Template("shopping/6", 3, _saved_half_sample, _saved_half_build),
    Template("percent/1", 1, _share_sample, _share_build),
    Template("percent/2", 1, _savings_sample, _savings_build),
    Template("percent/3", 2, _discount_sample, _discount_build),
    Template("percent/4", 2, _score_sample, _score_build),
    Template("percent/5", 3, _double_discount_sample, _double_discount_build),
    Template("percent/6", 3, _books_sample, _books_build),
)
