"""Words the math problems are built from: given names, things with their own counters (사과 3개, 연필 3자루,
책 3권 ...) and realistic prices, shops, places, relatives and school events.

A thing is always counted with its own counter; `COUNTER` is the one table the templates and the tests read.

    >>> from data_tools.generators.math_ko.lexicon import COUNTER, native_number
    >>> COUNTER["연필"], COUNTER["책"], COUNTER["강아지"], native_number(2), native_number(20), native_number(21)
    ('자루', '권', '마리', '두', '스무', '스물한')
"""

from __future__ import annotations

from dataclasses import dataclass

# Common given names of children born 2005-2020, with and without a final consonant (민준은 / 지호는).
NAMES = (
    "민준", "서연", "지호", "하은", "도윤", "서윤", "시우", "지우", "예준", "하윤", "주원", "지유", "유준",
    "채원", "은우", "수아", "건우", "지안", "현우", "다은", "선우", "예린", "우진", "소율", "준서", "민서",
    "지훈", "윤서", "승민", "가은", "태윤", "나연", "동현", "수빈", "재원", "혜진", "유나", "서아", "태오",
    "예서", "하준", "연우", "도하", "로아", "시아", "이안", "주아", "라희",
)


@dataclass(frozen=True)
class Thing:
    noun: str
    counter: str
    low: int = 0  # price range in 원, both ends multiples of `step`; 0 when it is not sold in the problems
    high: int = 0
    step: int = 100

    def prices(self) -> range:
        return range(self.low, self.high + 1, self.step)


# Things sold in shops. Prices are 2020s Korean prices, always multiples of 10 or 100 원.
SHOPS: dict[str, tuple[Thing, ...]] = {
    "과일 가게": (Thing("사과", "개", 1000, 3000), Thing("배", "개", 2000, 5000), Thing("귤", "개", 200, 600, 50),
               Thing("복숭아", "개", 1500, 4000), Thing("참외", "개", 1000, 3000)),
    "문구점": (Thing("연필", "자루", 300, 1200), Thing("볼펜", "자루", 500, 2000), Thing("공책", "권", 800, 3000),
            Thing("지우개", "개", 300, 1000), Thing("스티커", "장", 200, 1000), Thing("색종이", "장", 50, 100, 10)),
    "서점": (Thing("동화책", "권", 8000, 15000, 500), Thing("잡지", "권", 5000, 12000, 500),
           Thing("만화책", "권", 4000, 8000, 500), Thing("소설책", "권", 9000, 18000, 500)),
    "꽃집": (Thing("장미", "송이", 1500, 4000, 500), Thing("튤립", "송이", 2000, 4000, 500),
           Thing("카네이션", "송이", 1000, 3000, 500), Thing("해바라기", "송이", 2000, 5000, 500)),
    "빵집": (Thing("단팥빵", "개", 1200, 2500), Thing("도넛", "개", 1000, 2500), Thing("케이크", "조각", 4000, 7000, 500),
           Thing("크루아상", "개", 2000, 4000)),
    "카페": (Thing("커피", "잔", 2000, 5500, 500), Thing("주스", "잔", 3000, 6000, 500),
           Thing("코코아", "잔", 3000, 5000, 500), Thing("녹차", "잔", 2500, 5000, 500)),
    "옷 가게": (Thing("티셔츠", "벌", 10000, 30000, 1000), Thing("바지", "벌", 20000, 50000, 1000),
              Thing("양말", "켤레", 1000, 5000, 500), Thing("장갑", "켤레", 3000, 15000, 1000)),
    "신발 가게": (Thing("운동화", "켤레", 30000, 90000, 1000), Thing("구두", "켤레", 40000, 120000, 1000),
               Thing("슬리퍼", "켤레", 5000, 15000, 1000)),
    "편의점": (Thing("삼각김밥", "개", 1000, 1800), Thing("컵라면", "개", 1000, 2000), Thing("생수", "병", 500, 1500),
            Thing("우유", "팩", 1000, 2500)),
}
SHOP_ITEMS = tuple((shop, thing) for shop, things in SHOPS.items() for thing in things)

# Things that are counted or shared but not bought in the problems.
SHAREABLE = (Thing("사탕", "개"), Thing("구슬", "개"), Thing("쿠키", "개"), Thing("딱지", "장"), Thing("젤리", "개"),
             Thing("초콜릿", "개"), Thing("귤", "개"), Thing("연필", "자루"), Thing("공책", "권"), Thing("색종이", "장"),
             Thing("스티커", "장"), Thing("도토리", "개"), Thing("호두", "개"), Thing("딸기", "개"))
ANIMALS = (Thing("강아지", "마리"), Thing("고양이", "마리"), Thing("토끼", "마리"), Thing("닭", "마리"),
           Thing("오리", "마리"), Thing("물고기", "마리"), Thing("병아리", "마리"), Thing("돼지", "마리"))
OTHERS = (Thing("자동차", "대"), Thing("자전거", "대"), Thing("버스", "대"), Thing("집", "채"), Thing("종이", "장"),
          Thing("물", "잔"), Thing("꽃", "송이"), Thing("옷", "벌"), Thing("신발", "켤레"), Thing("책", "권"),
          Thing("사람", "명"), Thing("학생", "명"), Thing("상자", "개"), Thing("문제", "개"), Thing("피자", "판"),
          Thing("타일", "장"), Thing("의자", "개"), Thing("수박", "통"))

COUNTER: dict[str, str] = {}
for _thing in (*(t for _, t in SHOP_ITEMS), *SHAREABLE, *ANIMALS, *OTHERS):
    assert COUNTER.setdefault(_thing.noun, _thing.counter) == _thing.counter, f"{_thing.noun} has two counters"
SOLD = {thing.noun: thing for _, thing in SHOP_ITEMS}  # noun -> Thing with its price range
SHOP_OF = {thing.noun: shop for shop, thing in SHOP_ITEMS}

# Legs per animal for the 닭과 돼지 problems.
LEGS = {"닭": 2, "오리": 2, "병아리": 2, "강아지": 4, "고양이": 4, "토끼": 4, "돼지": 4}

# Relative -> plausible age gap to the child in years (older relatives only; 형/누나/오빠/언니 depend on the
# child's gender, which a name does not settle, so they are left out).
RELATIVES = {"어머니": (24, 40), "아버지": (25, 42), "이모": (15, 30), "삼촌": (15, 30), "고모": (15, 30),
             "할머니": (50, 68), "할아버지": (52, 70)}
PARENTS = ("어머니", "아버지")

ACTIVITIES = ("숙제", "피아노 연습", "줄넘기", "청소", "독서", "운동", "수영", "산책", "영어 공부", "수학 공부",
              "태권도 연습", "축구 연습", "그림 연습", "바이올린 연습")
SCHOOL_EVENTS = ("운동회", "소풍", "학예회", "음악회", "체육 대회", "현장 체험 학습", "방학식", "과학 축제",
                 "독서 캠프", "수학 경시대회")
SUBJECTS = ("국어", "수학", "영어", "과학", "사회", "음악", "미술", "체육")
WEEKDAYS = ("월요일", "화요일", "수요일", "목요일", "금요일", "토요일", "일요일")  # datetime.date.weekday() order

# Where a family drives (tens to hundreds of km) and where a child walks (hundreds of m).
FAR_PLACES = ("할머니 댁", "이모 댁", "바닷가", "캠핑장", "스키장", "휴양림", "삼촌 댁", "고모 댁")
NEAR_PLACES = ("학교", "도서관", "공원", "수영장", "놀이터", "문구점", "체육관", "우체국", "시장", "태권도장")
# Vehicle -> (slowest, fastest, step) in km/h.
VEHICLES = {"자전거": (10, 20, 1), "자동차": (50, 100, 5), "버스": (40, 80, 5), "기차": (80, 150, 10),
            "고속 열차": (200, 300, 10)}
# Rectangles and squares: (what, unit, shortest side, longest side), so no 5cm-wide window.
RECTANGLES = (("책상", "cm", 40, 160), ("액자", "cm", 10, 60), ("공책 표지", "cm", 15, 30), ("스케치북", "cm", 25, 60),
              ("창문", "cm", 50, 200), ("텃밭", "m", 2, 20), ("운동장", "m", 40, 150), ("꽃밭", "m", 2, 15),
              ("수영장", "m", 10, 50), ("주차장", "m", 10, 80))
SQUARES = (("손수건", "cm", 20, 50), ("방석", "cm", 30, 60), ("색종이", "cm", 5, 25), ("타일", "cm", 10, 60),
           ("탁자", "cm", 50, 120), ("텃밭", "m", 2, 20), ("꽃밭", "m", 2, 15), ("광장", "m", 20, 100))
CONTAINERS = (("물통", "물"), ("주전자", "보리차"), ("어항", "물"), ("병", "주스"), ("냄비", "국"), ("항아리", "식혜"))

_ONES = ("", "한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉")
_TENS = ("", "열", "스물", "서른", "마흔", "쉰", "예순", "일흔", "여든", "아흔")


def native_number(n: int) -> str:
    """Native Korean numeral in the attributive form used before a counter: 1 한, 2 두, 20 스무, 21 스물한."""
    if not 1 <= n <= 99:
        raise ValueError(f"native numerals are written here for 1..99 only, got {n}")
    tens, ones = divmod(n, 10)
    if n == 20:
        return "스무"  # 스물 drops its ㄹ before a counter: 스무 개, but 스물한 개
    return _TENS[tens] + _ONES[ones]
