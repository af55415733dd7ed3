"""Measuring problems: speed (distance = speed × time, walking in m per minute, two people meeting) and unit
conversion (km/m/cm, kg/g, L/mL, hours/minutes). Decimals such as 2.5km are exact tenths or hundredths."""

from __future__ import annotations

from fractions import Fraction

from data_tools.generators.math_ko.lexicon import ACTIVITIES, CONTAINERS, FAR_PLACES, NAMES, NEAR_PLACES, VEHICLES
from data_tools.generators.math_ko.wording import Template, Worked, num, pick, writer

MOTOR = tuple(v for v in VEHICLES if v not in ("자전거", "고속 열차"))
LONGEST_TRIP = 600  # km: nobody rides a train for 1,500km in a country 500km long


def _speed(rng, vehicle: str) -> int:
    low, high, step = VEHICLES[vehicle]
    return rng.randrange(low, high + 1, step)


def _hours(rng, v: int) -> int:
    return rng.randint(2, max(2, min(5, LONGEST_TRIP // v)))


def _distance_sample(rng):
    vehicle = pick(rng, tuple(VEHICLES))
    v = _speed(rng, vehicle)
    return {"name": pick(rng, NAMES), "vehicle": vehicle, "v": v, "t": _hours(rng, v)}


def _distance_build(s, style):
    answer = s["v"] * s["t"]
    w = writer(style, **s, speed=f"시속 {s['v']}km")
    question = w("{name|이/가} 탄 {vehicle|이/가} {speed|(으)로} {t}시간 동안 <달렸습니다|달렸어요>. "
                 "{vehicle|이/가} 달린 거리는 {q|?}", q="몇 km")
    steps = [w("{speed|은/는} 1시간에 {vkm|을/를} 가는 빠르기<입니다|예요>.", vkm=f"{s['v']}km"),
             w("거리는 속력에 시간을 곱하므로 {e|.}", e=f"{s['v']} × {s['t']} = {num(answer)}(km)")]
    return Worked(question, steps, answer, "km")


def _hours_sample(rng):
    vehicle = pick(rng, MOTOR)
    v = _speed(rng, vehicle)
    return {"name": pick(rng, NAMES), "vehicle": vehicle, "v": v, "place": pick(rng, FAR_PLACES),
            "d": v * _hours(rng, v)}


def _hours_build(s, style):
    answer = s["d"] // s["v"]
    w = writer(style, **s, speed=f"시속 {s['v']}km", dist=f"{num(s['d'])}km")
    question = w("{name}네 가족은 {speed|(으)로} 달리는 {vehicle|을/를} 타고 {dist} 떨어진 {place}에 <갔습니다|갔어요>. "
                 "가는 데 몇 시간이 <걸렸습니까?|걸렸어요?>")
    steps = [w("걸린 시간은 거리를 속력으로 나누어 <구합니다|구해요>."),
             w("따라서 걸린 시간은 {e|.}", e=f"{num(s['d'])} ÷ {s['v']} = {answer}(시간)")]
    return Worked(question, steps, answer, "시간")


def _per_hour_sample(rng):
    while True:  # a bicycle at 10-30 km/h, for a number of minutes that divides the hour; the distance in tenths
        v, m = rng.randint(10, 30), pick(rng, (5, 6, 10, 12, 15, 20, 30))
        if v * m % 6 == 0:
            return {"name": pick(rng, NAMES), "tenths": v * m // 6, "m": m}


def _per_hour_build(s, style):
    times = 60 // s["m"]
    d = Fraction(s["tenths"], 10)
    answer = d * times
    w = writer(style, **s, dist=f"{num(d)}km", times=times)
    question = w("{name|은/는} 자전거를 타고 {dist|을/를} {m}분 동안 <달렸습니다|달렸어요>. 같은 빠르기로 1시간 동안 달리면 "
                 "몇 km를 갈 수 <있습니까?|있어요?>")
    steps = [w("1시간은 60분이고, {e|.}", e=f"60 ÷ {s['m']} = {times}"),
             w("그러므로 1시간은 {m}분의 {times}<배입니다|배예요>."),
             w("1시간 동안 가는 거리도 {times}배이므로 {e|.}", e=f"{num(d)} × {times} = {num(answer)}(km)")]
    return Worked(question, steps, answer, "km")


def _walk_sample(rng):
    return {"name": pick(rng, NAMES), "v": rng.randint(50, 90), "t": rng.randint(8, 40),
            "place": pick(rng, NEAR_PLACES)}


def _walk_build(s, style):
    answer = s["v"] * s["t"]
    w = writer(style, **s, step=f"{s['v']}m")
    question = w("{name|은/는} 1분에 {step}씩 <걷습니다|걸어요>. 집에서 {place}까지 걸어서 {t}분 걸렸다면, 집에서 {place}까지의 "
                 "거리는 {q|?}", q="몇 m")
    steps = [w("1분에 {step|을/를} 가므로 {t}분 동안에는 {t}배를 <갑니다|가요>."),
             w("따라서 거리는 {e|.}", e=f"{s['v']} × {s['t']} = {num(answer)}(m)")]
    return Worked(question, steps, answer, "m")


def _two_legs_sample(rng):
    vehicle = pick(rng, ("기차", "버스", "자동차"))
    v1, v2 = _speed(rng, vehicle), _speed(rng, vehicle)
    while v2 == v1:  # at one speed throughout there would be no second leg to add
        v2 = _speed(rng, vehicle)
    return {"vehicle": vehicle, "v1": v1, "t1": rng.randint(1, 3), "v2": v2, "t2": rng.randint(1, 3)}


def _two_legs_build(s, style):
    a, b = s["v1"] * s["t1"], s["v2"] * s["t2"]
    w = writer(style, **s, speed=f"시속 {s['v1']}km", speed2=f"시속 {s['v2']}km")
    question = w("{vehicle|이/가} {speed|(으)로} {t1}시간 달린 뒤, {speed2|(으)로} {t2}시간 더 <달렸습니다|달렸어요>. "
                 "{vehicle|이/가} 달린 거리는 모두 {q|?}", q="몇 km")
    steps = [w("처음 {t1}시간 동안 달린 거리는 {e|.}", e=f"{s['v1']} × {s['t1']} = {num(a)}(km)"),
             w("나중 {t2}시간 동안 달린 거리는 {e|.}", e=f"{s['v2']} × {s['t2']} = {num(b)}(km)"),
             w("모두 더하면 {e|.}", e=f"{num(a)} + {num(b)} = {num(a + b)}(km)")]
    return Worked(question, steps, a + b, "km")


def _meet_sample(rng):
    a, b, t = rng.randint(50, 90), rng.randint(50, 90), rng.randint(5, 30)
    return {"names": "·".join(rng.sample(NAMES, 2)), "a": a, "b": b, "d": (a + b) * t}


def _meet_build(s, style):
    (first, second), both = s["names"].split("·"), s["a"] + s["b"]
    answer = s["d"] // both
    w = writer(style, **s, n1=first, n2=second, dist=f"{s['d']:,}m", sa=f"{s['a']}m", sb=f"{s['b']}m")
    question = w("{n1|과/와} {n2|이/가} {dist} 떨어진 곳에서 동시에 서로를 향해 걷기 <시작했습니다|시작했어요>. {n1|은/는} 1분에 "
                 "{sa}, {n2|은/는} 1분에 {sb|을/를} 걷는다면 두 사람은 몇 분 뒤에 <만납니까?|만날까요?>")
    steps = [w("두 사람 사이의 거리는 1분마다 {e}씩 <줄어듭니다|줄어들어요>.", e=f"{s['a']} + {s['b']} = {both}(m)"),
             w("{dist|이/가} 모두 줄어드는 데 걸리는 시간은 {e|.}", e=f"{s['d']:,} ÷ {both} = {answer}(분)")]
    return Worked(question, steps, answer, "분")


def _km_sample(rng):
    while True:  # never a whole number of km: "1km는 몇 m입니까?" right after the working's "1km는 1,000m"
        tenths = rng.randint(5, 99)
        if tenths % 10:
            return {"name": pick(rng, NAMES), "tenths": tenths, "how": pick(rng, ("걷습니다", "달립니다", "자전거를 탑니다"))}


_PLAIN = {"걷습니다": "걸어요", "달립니다": "달려요", "자전거를 탑니다": "자전거를 타요"}


def _km_build(s, style):
    km = Fraction(s["tenths"], 10)
    answer = s["tenths"] * 100
    w = writer(style, **s, dist=f"{num(km)}km", verb=s["how"] if style == "formal" else _PLAIN[s["how"]])
    question = w("{name|은/는} 매일 {dist}씩 {verb}. {dist|은/는} {q|?}", q="몇 m")
    steps = [w("1km는 {m|.}", m="1,000m"), w("{dist|은/는} {e|.}", e=f"{num(km)} × 1,000 = {num(answer)}(m)")]
    return Worked(question, steps, answer, "m")


# (what is weighed, lightest and heaviest in hundredths of a kg)
WEIGHTS = (("수박 한 통", 300, 900), ("고양이", 300, 650), ("책가방", 150, 500), ("감자 한 상자", 500, 1500),
           ("강아지", 200, 1200), ("쌀 한 포대", 1000, 2000), ("호박 한 덩이", 100, 400), ("여행 가방", 800, 2300),
           ("택배 상자", 50, 1500), ("멜론 한 통", 100, 250))


def _kg_sample(rng):
    what, low, high = pick(rng, WEIGHTS)
    while True:  # never a whole number of kg, which the working's "1kg은 1,000g" already answers
        hundredths = rng.randint(low, high)
        if hundredths % 100:
            return {"what": what, "hundredths": hundredths}


def _kg_build(s, style):
    kg = Fraction(s["hundredths"], 100)
    answer = s["hundredths"] * 10
    w = writer(style, **s, kg=f"{num(kg)}kg")
    question = w("{what}의 무게는 {kg|.} 이 무게는 {q|?}", q="몇 g")
    steps = [w("1kg은 {g|.}", g="1,000g"), w("{kg|은/는} {e|.}", e=f"{num(kg)} × 1,000 = {num(answer)}(g)")]
    return Worked(question, steps, answer, "g")


def _litres_sample(rng):
    container, liquid = pick(rng, CONTAINERS)
    return {"container": container, "liquid": liquid, "l": rng.randint(1, 9), "ml": rng.randint(1, 99) * 10}


def _litres_build(s, style):
    answer = s["l"] * 1000 + s["ml"]
    w = writer(style, **s, amount=f"{s['l']}L {s['ml']}mL")
    question = w("{container}에 {liquid|이/가} {amount} 들어 <있습니다|있어요>. {liquid|은/는} 모두 {q|?}", q="몇 mL")
    steps = [w("1L는 1,000mL이므로 {l}L는 {e|.}", e=f"{s['l']} × 1,000 = {num(s['l'] * 1000)}(mL)"),
             w("여기에 {mls|을/를} 더하면 {e|.}", mls=f"{s['ml']}mL",
               e=f"{num(s['l'] * 1000)} + {s['ml']} = {num(answer)}(mL)")]
    return Worked(question, steps, answer, "mL")


GRAMS = tuple(g for g in range(110, 5000, 10) if g % 1000)  # never a whole number of kg


def _grams_sample(rng):
    return {"name": pick(rng, NAMES), "food": pick(rng, ("밀가루", "설탕", "쌀", "감자", "고구마", "포도", "양파", "당근")),
            "g": pick(rng, GRAMS)}


def _grams_build(s, style):
    answer = Fraction(s["g"], 1000)
    w = writer(style, **s, grams=f"{num(s['g'])}g")
    question = w("{name|은/는} {food} {grams|을/를} <샀습니다|샀어요>. {name|이/가} 산 {food|은/는} {q|?}", q="몇 kg")
    steps = [w("1,000g이 1kg이므로 1,000으로 <나눕니다|나눠요>."),
             w("따라서 {grams|은/는} {e|.}", e=f"{num(s['g'])} ÷ 1,000 = {num(answer)}(kg)")]
    return Worked(question, steps, answer, "kg")


def _cups_sample(rng):
    while True:
        container, liquid = pick(rng, CONTAINERS)
        total, cup = rng.randint(11, 99) * 100, pick(rng, (100, 150, 200, 250, 300, 350, 400, 450, 500))
        if total % cup == 0 and total % 1000:
            return {"name": pick(rng, NAMES), "container": container, "liquid": liquid, "l": total // 1000,
                    "ml": total % 1000, "cup": cup}


def _cups_build(s, style):
    total = s["l"] * 1000 + s["ml"]
    amount = f"{s['l']}L {s['ml']}mL"
    w = writer(style, **s, amount=amount, per=f"{s['cup']}mL")
    question = w("{name|은/는} {container}에 든 {liquid} {amount|을/를} 컵에 {per}씩 나누어 담으려고 <합니다|해요>. "
                 "컵 몇 잔에 담을 수 <있습니까?|있어요?>")
    steps = [w("1L는 1,000mL이므로 {amount|은/는} {e|.}", e=f"{s['l']} × 1,000 + {s['ml']} = {num(total)}(mL)"),
             w("이것을 {per}씩 나누면 {e|.}", e=f"{num(total)} ÷ {s['cup']} = {total // s['cup']}(잔)")]
    return Worked(question, steps, total // s["cup"], "잔")


def _daily_minutes_sample(rng):
    while True:
        m, d = rng.randint(2, 12) * 5, rng.randint(3, 30)
        if m * d % 60 == 0:
            return {"name": pick(rng, NAMES), "act": pick(rng, ACTIVITIES), "m": m, "d": d}


def _daily_minutes_build(s, style):
    total = s["m"] * s["d"]
    w = writer(style, **s)
    question = w("{name|은/는} 하루에 {m}분씩 {act|을/를} <합니다|해요>. {d}일 동안 {act|을/를} 한 시간은 모두 몇 "
                 "<시간입니까?|시간이에요?>")
    steps = [w("{d}일 동안 한 시간을 분으로 구하면 {e|.}", e=f"{s['m']} × {s['d']} = {num(total)}(분)"),
             w("1시간은 60분이므로 시간으로 바꾸면 {e|.}", e=f"{num(total)} ÷ 60 = {total // 60}(시간)")]
    return Worked(question, steps, total // 60, "시간")


TEMPLATES = (
    Template("speed/1", 1, _distance_sample, _distance_build),
    Template("speed/2", 1, _hours_sample, _hours_build),
    Template("speed/3", 2, _per_hour_sample, _per_hour_build),
    Template("speed/4", 2, _walk_sample, _walk_build),
    Template("speed/5", 3, _two_legs_sample, _two_legs_build),
    Template("speed/6", 3, _meet_sample, _meet_build),
    Template("units/1", 1, _km_sample, _km_build),
    Template("units/2", 1, _kg_sample, _kg_build),
    Template("units/3", 2, _litres_sample, _litres_build),
    Template("units/4", 2, _grams_sample, _grams_build),
    Template("units/5", 3, _cups_sample, _cups_build),
    Template("units/6", 3, _daily_minutes_sample, _daily_minutes_build),
)
