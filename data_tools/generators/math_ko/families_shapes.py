"""Geometry problems: area and perimeter of rectangles, squares and triangles, a square with the same
perimeter as a rectangle, and tiles to cover a floor (m to cm). A triangle's area may be an exact .5."""

from __future__ import annotations

from fractions import Fraction

from data_tools.generators.math_ko.lexicon import NAMES, RECTANGLES, SQUARES
from data_tools.generators.math_ko.wording import Template, Worked, num, pick, writer

def _two_sides(rng, low: int, high: int) -> tuple[int, int]:
    """Width and height of a rectangle that is not a square (one with equal sides is no 직사각형 to ask about)."""
    a = rng.randint(low, high)
    b = rng.randint(low, high - 1)
    return a, b + (b >= a)  # uniform over the other sides


def _rectangle(rng) -> dict:
    thing, unit, low, high = pick(rng, RECTANGLES)
    a, b = _two_sides(rng, low, high)
    return {"thing": thing, "unit": unit, "a": a, "b": b}


def _rect_area_sample(rng):
    return _rectangle(rng)


def _rect_area_build(s, style):
    area, unit = s["a"] * s["b"], s["unit"]
    w = writer(style, **s, wide=f"{s['a']}{unit}", tall=f"{s['b']}{unit}", q=f"몇 {unit}²")
    question = w("{thing|은/는} 가로가 {wide}, 세로가 {tall}인 직사각형 모양<입니다|이에요>. {thing}의 넓이는 {q|?}")
    steps = [w("직사각형의 넓이는 가로와 세로를 곱한 <값입니다|값이에요>."),
             w("따라서 {thing}의 넓이는 {e|.}", e=f"{s['a']} × {s['b']} = {num(area)}({unit}²)")]
    return Worked(question, steps, area, f"{unit}²")


def _rect_perimeter_sample(rng):
    return {"name": pick(rng, NAMES), **_rectangle(rng)}


def _rect_perimeter_build(s, style):
    unit, a, b = s["unit"], s["a"], s["b"]
    w = writer(style, **s, wide=f"{a}{unit}", tall=f"{b}{unit}", q=f"몇 {unit}")
    question = w("{name}네 {thing|은/는} 가로가 {wide}, 세로가 {tall}인 직사각형 모양<입니다|이에요>. "
                 "{thing}의 둘레는 {q|?}")
    steps = [w("직사각형의 둘레는 가로와 세로를 더한 값의 2<배입니다|배예요>."),
             w("따라서 둘레는 {e|.}", e=f"({a} + {b}) × 2 = {2 * (a + b)}({unit})")]
    return Worked(question, steps, 2 * (a + b), unit)


def _square_sample(rng):
    thing, unit, low, high = pick(rng, SQUARES)
    return {"thing": thing, "unit": unit, "a": rng.randint(low, high)}


def _square_build(s, style):
    unit = s["unit"]
    w = writer(style, **s, side=f"{s['a']}{unit}", q=f"몇 {unit}")
    question = w("한 변의 길이가 {side}인 정사각형 모양의 {thing|이/가} <있습니다|있어요>. 이 {thing}의 둘레는 {q|?}")
    steps = [w("정사각형은 네 변의 길이가 모두 <같습니다|같아요>."),
             w("둘레는 {e|.}", e=f"{s['a']} × 4 = {s['a'] * 4}({unit})")]
    return Worked(question, steps, s["a"] * 4, unit)


def _triangle_sample(rng):
    return {"base": rng.randint(3, 60), "height": rng.randint(3, 60),
            "what": pick(rng, ("삼각형", "깃발", "색종이", "표지판", "샌드위치", "지붕 장식"))}


def _triangle_build(s, style):
    area = Fraction(s["base"] * s["height"], 2)
    shape = "삼각형" if s["what"] == "삼각형" else f"삼각형 모양의 {s['what']}"
    w = writer(style, **s, b=f"{s['base']}cm", h=f"{s['height']}cm", q="몇 cm²", shape=shape)
    question = w("밑변의 길이가 {b}, 높이가 {h}인 {shape|이/가} <있습니다|있어요>. 이 {what}의 넓이는 {q|?}")
    steps = [w("삼각형의 넓이는 밑변과 높이를 곱한 뒤 2로 <나눕니다|나눠요>."),
             w("따라서 {what}의 넓이는 {e|.}", e=f"{s['base']} × {s['height']} ÷ 2 = {num(area)}(cm²)")]
    return Worked(question, steps, area, "cm²")


def _from_area_sample(rng):
    s = _rectangle(rng)
    return {"thing": s["thing"], "unit": s["unit"], "area": s["a"] * s["b"], "a": s["a"]}


def _from_area_build(s, style):
    unit, a = s["unit"], s["a"]
    b = s["area"] // a
    w = writer(style, **s, big=f"{num(s['area'])}{unit}²", wide=f"{a}{unit}", q=f"몇 {unit}")
    question = w("넓이가 {big}, 가로가 {wide}인 직사각형 모양의 {thing|이/가} <있습니다|있어요>. 이 {thing}의 둘레는 {q|?}")
    steps = [w("세로는 넓이를 가로로 나누어 {e|.}", e=f"{num(s['area'])} ÷ {a} = {b}({unit})"),
             w("둘레는 가로와 세로를 더해 2배 하므로 {e|.}", e=f"({a} + {b}) × 2 = {2 * (a + b)}({unit})")]
    return Worked(question, steps, 2 * (a + b), unit)


def _same_perimeter_sample(rng):
    while True:
        a, b = rng.randint(4, 80), rng.randint(4, 80)
        if a != b and (a + b) % 2 == 0:
            return {"a": a, "b": b}


def _same_perimeter_build(s, style):
    a, b = s["a"], s["b"]
    perimeter, side = 2 * (a + b), (a + b) // 2
    w = writer(style, **s, wide=f"{a}cm", tall=f"{b}cm", q="몇 cm²")
    question = w("가로가 {wide}, 세로가 {tall}인 직사각형과 둘레의 길이가 같은 정사각형이 <있습니다|있어요>. "
                 "이 정사각형의 넓이는 {q|?}")
    steps = [w("직사각형의 둘레는 {e|.}", e=f"({a} + {b}) × 2 = {perimeter}(cm)"),
             w("정사각형의 한 변은 둘레를 4로 나누어 {e|.}", e=f"{perimeter} ÷ 4 = {side}(cm)"),
             w("정사각형의 넓이는 {e|.}", e=f"{side} × {side} = {num(side * side)}(cm²)")]
    return Worked(question, steps, side * side, "cm²")


def _tiles_sample(rng):
    tile = pick(rng, (10, 20, 25, 50))
    a, b = _two_sides(rng, 2, 9)
    return {"room": pick(rng, ("거실", "부엌", "욕실", "현관", "교실", "복도")), "a": a, "b": b, "tile": tile}


def _tiles_build(s, style):
    across, down = s["a"] * 100 // s["tile"], s["b"] * 100 // s["tile"]
    w = writer(style, **s, wide=f"{s['a']}m", tall=f"{s['b']}m", side=f"{s['tile']}cm")
    question = w("가로가 {wide}, 세로가 {tall}인 직사각형 모양의 {room} 바닥에 한 변의 길이가 {side}인 정사각형 타일을 "
                 "빈틈없이 깔려고 <합니다|해요>. 타일은 모두 몇 장 <필요합니까?|필요해요?>")
    steps = [w("1m는 100cm이므로 바닥은 가로 {x}cm, 세로 {y}<cm입니다|cm예요>.", x=s["a"] * 100, y=s["b"] * 100),
             w("가로에는 타일이 {e|.}", e=f"{s['a'] * 100} ÷ {s['tile']} = {across}(장)"),
             w("세로에는 타일이 {e|.}", e=f"{s['b'] * 100} ÷ {s['tile']} = {down}(장)"),
             w("필요한 타일은 {e|.}", e=f"{across} × {down} = {num(across * down)}(장)")]
    return Worked(question, steps, across * down, "장")


TEMPLATES = (
    Template("geometry/1", 1, _rect_area_sample, _rect_area_build),
    Template("geometry/2", 1, _square_sample, _square_build),
    Template("geometry/3", 2, _triangle_sample, _triangle_build),
    Template("geometry/4", 2, _from_area_sample, _from_area_build),
    Template("geometry/5", 3, _same_perimeter_sample, _same_perimeter_build),
    Template("geometry/6", 3, _tiles_sample, _tiles_build),
    Template("geometry/7", 1, _rect_perimeter_sample, _rect_perimeter_build),
)
