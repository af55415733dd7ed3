"""Time problems: clock (times of day and durations, always asked as one number of minutes or hours) and
calendar (weekdays and counts of days; a date with a year uses the real calendar, so "2025년 3월 5일은
수요일입니다" is true, and a weekday answer is a weekday name)."""

from __future__ import annotations

import datetime

from data_tools.generators.math_ko.lexicon import ACTIVITIES, NAMES, NEAR_PLACES, SCHOOL_EVENTS, WEEKDAYS, native_number
from data_tools.generators.math_ko.wording import Template, Worked, clock_text, hours_minutes, numbers, pick, writer


def _clock(minute_of_day: int) -> str:
    """24-hour form for the working: 13시 15분."""
    hour, minute = divmod(minute_of_day, 60)
    return f"{hour}시 {minute}분" if minute else f"{hour}시"


def _same_hour_sample(rng):
    hour, minute = rng.randint(7, 21), rng.randint(0, 50)
    return {"name": pick(rng, NAMES), "act": pick(rng, ACTIVITIES), "start": hour * 60 + minute,
            "minutes": rng.randint(5, 59 - minute)}


def _same_hour_build(s, style):
    start, end = s["start"], s["start"] + s["minutes"]
    w = writer(style, **s, t1=clock_text(start), t2=clock_text(end))
    question = w("{name|은/는} {t1}에 {act|을/를} 시작해서 {t2}에 <마쳤습니다|마쳤어요>. {act|을/를} 한 시간은 몇 <분입니까?|분이에요?>")
    steps = [w("시작한 시각과 마친 시각의 '시'가 같으므로 분끼리 <뺍니다|빼요>."),
             w("{act|을/를} 한 시간은 {e|.}", e=f"{end % 60} - {start % 60} = {s['minutes']}(분)")]
    return Worked(question, steps, s["minutes"], "분")


def _to_minutes_sample(rng):
    return {"name": pick(rng, NAMES), "act": pick(rng, ACTIVITIES), "h": rng.randint(1, 4), "m": rng.randint(1, 59)}


def _to_minutes_build(s, style):
    answer = s["h"] * 60 + s["m"]
    w = writer(style, **s)
    question = w("{name|은/는} 주말에 {act|을/를} {h}시간 {m}분 동안 <했습니다|했어요>. {act|을/를} 한 시간은 모두 몇 <분입니까?|분이에요?>")
    steps = [w("1시간은 60분이므로 {h}시간은 {e|.}", e=f"{s['h']} × 60 = {s['h'] * 60}(분)"),
             w("여기에 {m}분을 더하면 {e|.}", e=f"{s['h'] * 60} + {s['m']} = {answer}(분)")]
    return Worked(question, steps, answer, "분")


def _span_steps(w, start: int, end: int) -> list[str]:
    """Working for end - start across hours, written with the 24-hour clock."""
    return [w("24시간제로 나타내면 {a}부터 {b}까지<입니다|예요>.", a=_clock(start), b=_clock(end)),
            w("걸린 시간은 {b} - {a} = {hm|.}", a=_clock(start), b=_clock(end), hm=hours_minutes(end - start))]


def _ride_sample(rng):
    minutes = rng.randint(70, 330)
    start = rng.randint(6 * 60, 23 * 60 - 1 - minutes)
    return {"name": pick(rng, NAMES), "ride": pick(rng, ("기차", "버스", "고속버스", "배", "비행기")), "start": start,
            "minutes": minutes}


def _ride_build(s, style):
    start, end = s["start"], s["start"] + s["minutes"]
    hours, rest = divmod(s["minutes"], 60)
    w = writer(style, **s, t1=clock_text(start), t2=clock_text(end))
    question = w("{name|은/는} {t1}에 출발하는 {ride|을/를} 타고 {t2}에 <도착했습니다|도착했어요>. "
                 "{ride|을/를} 타고 간 시간은 모두 몇 <분입니까?|분이에요?>")
    steps = _span_steps(w, start, end)
    steps.append(w("1시간은 60분이므로 {e|.}", e=f"{hours} × 60 + {rest} = {s['minutes']}(분)"))
    return Worked(question, steps, s["minutes"], "분")


def _sleep_sample(rng):
    start = rng.randint(20 * 6, 23 * 6) * 10  # 8 pm to 11 pm, on the 10 minutes
    end = rng.randint(5 * 6, 8 * 6) * 10
    if rng.random() < 0.5:  # half of them sleep whole hours, asked in hours
        end = end // 60 * 60 + start % 60
    return {"name": pick(rng, NAMES), "start": start, "end": end}


def _bare_clock(minute_of_day: int) -> str:
    """12-hour time without 오전/오후, for "어젯밤 10시 30분", "오늘 아침 7시"."""
    hour, minute = divmod(minute_of_day, 60)
    hour = hour - 12 if hour > 12 else hour
    return f"{hour}시 {minute}분" if minute else f"{hour}시"


def _sleep_build(s, style):
    before, after = 24 * 60 - s["start"], s["end"]
    total = before + after
    whole_hours = total % 60 == 0
    w = writer(style, **s, t1=_bare_clock(s["start"]), t2=_bare_clock(s["end"]), unit="시간" if whole_hours else "분")
    question = w("{name|은/는} 어젯밤 {t1}에 잠자리에 들어 오늘 아침 {t2}에 <일어났습니다|일어났어요>. "
                 "{name|이/가} 잠을 잔 시간은 모두 몇 {unit|?}")
    steps = [w("밤 {t1}부터 밤 12시까지는 {hm|.}", hm=hours_minutes(before)),
             w("밤 12시부터 아침 {t2}까지는 {hm|.}", hm=hours_minutes(after)),
             w("둘을 더하면 {a} + {b} = {hm|.}", a=hours_minutes(before), b=hours_minutes(after),
               hm=hours_minutes(total))]
    if not whole_hours:
        steps.append(w("분으로 나타내면 {e|.}", e=f"{total // 60} × 60 + {total % 60} = {total}(분)"))
    return Worked(question, steps, total // 60 if whole_hours else total, "시간" if whole_hours else "분")


def _break_sample(rng):
    minutes = rng.randint(60, 240)
    start = rng.randint(8 * 60, 22 * 60 - minutes)
    return {"name": pick(rng, NAMES), "act": pick(rng, ACTIVITIES), "start": start, "minutes": minutes,
            "rest": rng.randint(1, 4) * 5}


def _break_build(s, style):
    start, end = s["start"], s["start"] + s["minutes"]
    answer = s["minutes"] - s["rest"]
    w = writer(style, **s, t1=clock_text(start), t2=clock_text(end))
    question = w("{name|은/는} {t1}부터 {t2}까지 {act|을/를} <했습니다|했어요>. 중간에 {rest}분 동안 쉬었다면, "
                 "실제로 {act|을/를} 한 시간은 몇 <분입니까?|분이에요?>")
    hours, rest = divmod(s["minutes"], 60)
    steps = _span_steps(w, start, end)
    steps += [w("이것을 분으로 나타내면 {e|.}", e=f"{hours} × 60 + {rest} = {s['minutes']}(분)"),
              w("쉰 시간을 빼면 {e|.}", e=f"{s['minutes']} - {s['rest']} = {answer}(분)")]
    return Worked(question, steps, answer, "분")


def _periods_sample(rng):
    return {"name": pick(rng, NAMES), "place": pick(rng, ("학교", "학원", "방과 후 교실")),
            "start": rng.randint(8 * 6, 10 * 6) * 10, "lesson": pick(rng, (35, 40, 45, 50)),
            "rest": pick(rng, (5, 10, 15)), "k": rng.randint(2, 6)}


def _periods_build(s, style):
    k, lesson, rest = s["k"], s["lesson"], s["rest"]
    answer = k * lesson + (k - 1) * rest
    w = writer(style, **s, t1=clock_text(s["start"]), nth=native_number(k))
    question = w("{name}네 {place|은/는} {t1}에 첫 수업을 <시작합니다|시작해요>. 수업은 한 번에 {lesson}분씩 하고, "
                 "수업과 수업 사이에 {rest}분씩 <쉽니다|쉬어요>. {nth} 번째 수업이 끝나는 것은 "
                 "첫 수업을 시작하고 몇 분 <뒤입니까?|뒤예요?>")
    steps = [w("수업 {nth} 번의 시간은 {e|.}", e=f"{lesson} × {k} = {lesson * k}(분)"),
             w("쉬는 시간은 수업보다 한 번 적은 {m} 번이므로 {e|.}", m=native_number(k - 1),
               e=f"{rest} × {k - 1} = {rest * (k - 1)}(분)"),
             w("모두 더하면 {e|.}", e=f"{lesson * k} + {rest * (k - 1)} = {answer}(분)")]
    return Worked(question, steps, answer, "분")


def _walk(weekday: str, days: int) -> str:
    """월요일 → 화요일 → 수요일: the weekdays met counting `days` forward (backward when negative)."""
    start, step = WEEKDAYS.index(weekday), 1 if days > 0 else -1
    return " → ".join(WEEKDAYS[(start + step * i) % 7] for i in range(abs(days) + 1))


def _weekday_steps(w, weekday: str, days: int) -> tuple[list[str], str]:
    """Working for the weekday `days` days after (or before, if negative) `weekday`."""
    answer = WEEKDAYS[(WEEKDAYS.index(weekday) + days) % 7]
    r = abs(days) % 7
    if abs(days) < 7:
        steps = [w("{d}일은 일주일보다 짧으므로 요일을 하나씩 <셉니다|세요>.", d=abs(days))]
    else:
        steps = [w("요일은 7일마다 되풀이되므로 {d}일을 7로 나눈 나머지를 <봅니다|봐요>: {e|.}", d=abs(days),
                   e=f"{abs(days)} ÷ 7 = {abs(days) // 7} … {r}")]
    if r == 0:
        steps.append(w("나머지가 0이므로 {w|과/와} 같은 요일인 {a|.}", w=weekday, a=answer))
    else:
        steps.append(w("{w}에서 {r}일 {way} 세면 {chain|(으)로}, 답은 {a|.}", w=weekday, r=r,
                       way="뒤로" if days > 0 else "거꾸로", chain=_walk(weekday, r if days > 0 else -r), a=answer))
    return steps, answer


def _event_sample(rng):
    return {"name": pick(rng, NAMES), "event": pick(rng, SCHOOL_EVENTS), "today": pick(rng, WEEKDAYS),
            "k": rng.randint(2, 30)}


def _event_build(s, style):
    w = writer(style, **s)
    question = w("오늘은 {today|.} {name}네 학교 {event|은/는} 오늘부터 {k}일 <뒤입니다|뒤예요>. "
                 "{event|은/는} 무슨 <요일입니까?|요일이에요?>")
    steps, answer = _weekday_steps(w, s["today"], s["k"])
    return Worked(question, steps, answer, "")


def _weeks_sample(rng):
    return {"name": pick(rng, NAMES), "act": pick(rng, ACTIVITIES), "weeks": rng.randint(2, 12),
            "days": rng.randint(1, 6)}


def _weeks_build(s, style):
    answer = 7 * s["weeks"] + s["days"]
    w = writer(style, **s)
    question = w("{name|은/는} {weeks}주 {days}일 동안 하루도 빠짐없이 {act|을/를} <했습니다|했어요>. "
                 "{act|을/를} 한 날은 모두 <며칠입니까?|며칠이에요?>")
    steps = [w("1주일은 7일이므로 {weeks}주는 {e|.}", e=f"7 × {s['weeks']} = {7 * s['weeks']}(일)"),
             w("여기에 {days}일을 더하면 {e|.}", e=f"{7 * s['weeks']} + {s['days']} = {answer}(일)")]
    return Worked(question, steps, answer, "일")


def _same_month_sample(rng):
    first, second = rng.sample(range(1, 29), 2)
    return {"month": rng.randint(1, 12), "day": first, "day2": second, "weekday": pick(rng, WEEKDAYS)}


def _same_month_build(s, style):
    days = s["day2"] - s["day"]
    w = writer(style, **s, gap=abs(days), way="뒤" if days > 0 else "전")
    question = w("어느 해 {month}월 {day}일은 {weekday|.} 같은 달 {day2}일은 무슨 <요일입니까?|요일이에요?>")
    steps = [w("{day2}일은 {day}일보다 {gap}일 {way|.}")]
    more, answer = _weekday_steps(w, s["weekday"], days)
    return Worked(question, steps + more, answer, "")


# (statement, 해요체 statement, relative clause) for "매일 ...한 날은 며칠".
HABITS = (("일기를 썼습니다", "일기를 썼어요", "일기를 쓴"), ("줄넘기를 했습니다", "줄넘기를 했어요", "줄넘기를 한"),
          ("화분에 물을 주었습니다", "화분에 물을 주었어요", "화분에 물을 준"),
          ("영어 단어를 외웠습니다", "영어 단어를 외웠어요", "영어 단어를 외운"),
          ("동생과 산책을 했습니다", "동생과 산책을 했어요", "동생과 산책을 한"))
_HABIT = {relative: (formal, plain) for formal, plain, relative in HABITS}


def _month_end(year: int, month: int) -> int:
    return ((datetime.date(year + month // 12, month % 12 + 1, 1)) - datetime.timedelta(days=1)).day


def _days_between_sample(rng):
    year, month = rng.randint(2020, 2030), rng.randint(1, 11)
    return {"name": pick(rng, NAMES), "habit": pick(rng, HABITS)[2], "year": year, "month": month,
            "day": rng.randint(2, _month_end(year, month)), "day2": rng.randint(1, 28)}


def _days_between_build(s, style):
    last = _month_end(s["year"], s["month"])
    first_part = last - s["day"] + 1
    answer = first_part + s["day2"]
    formal, plain = _HABIT[s["habit"]]
    w = writer(style, **s, month2=s["month"] + 1, last=last, verb=formal if style == "formal" else plain)
    question = w("{name|은/는} {year}년 {month}월 {day}일부터 {month2}월 {day2}일까지 하루도 빠짐없이 {verb}. "
                 "{habit} 날은 모두 <며칠입니까?|며칠이에요?>")
    steps = [w("{year}년 {month}월은 {last}일까지 <있습니다|있어요>."),
             w("{month}월에는 첫날도 세어야 하므로 {e|.}", e=f"{last} - {s['day']} + 1 = {first_part}(일)"),
             w("{month2}월에는 1일부터 {day2}일까지 {day2}일<입니다|이에요>."),
             w("모두 더하면 {e|.}", e=f"{first_part} + {s['day2']} = {answer}(일)")]
    return Worked(question, steps, answer, "일")


def _real_date_sample(rng):
    year, month = rng.randint(2020, 2030), rng.randint(1, 10)
    return {"year": year, "month": month, "day": rng.randint(1, _month_end(year, month)),
            "month2": month + rng.randint(1, 2), "day2": rng.randint(1, 28)}


def _real_date_exercise(s):
    """The weekday the question gives, the lengths of the months counted through and the two days: another year
    or other months with the same lengths are the same working."""
    return {"weekday": WEEKDAYS[datetime.date(s["year"], s["month"], s["day"]).weekday()],
            "ends": [_month_end(s["year"], m) for m in range(s["month"], s["month2"])], "day": s["day"],
            "day2": s["day2"]}


def _real_date_build(s, style):
    first = datetime.date(s["year"], s["month"], s["day"])
    days = (datetime.date(s["year"], s["month2"], s["day2"]) - first).days
    weekday = WEEKDAYS[first.weekday()]
    ends = [_month_end(s["year"], m) for m in range(s["month"], s["month2"])]
    parts = [f"({ends[0]} - {s['day']})", *map(str, ends[1:]), str(s["day2"])]
    w = writer(style, **s, weekday=weekday, lengths=", ".join(f"{m}월은 {e}일" for m, e in
                                                              zip(range(s["month"], s["month2"]), ends)))
    question = w("{year}년 {month}월 {day}일은 {weekday|.} 같은 해 {month2}월 {day2}일은 무슨 <요일입니까?|요일이에요?>")
    steps = [w("{year}년에 {lengths}까지 <있습니다|있어요>."),
             w("{month}월 {day}일부터 {month2}월 {day2}일까지는 {e}일 <뒤입니다|뒤예요>.",
               e=f"{' + '.join(parts)} = {days}")]
    more, answer = _weekday_steps(w, weekday, days)
    return Worked(question, steps + more, answer, "")


def _every_k_days_sample(rng):
    return {"name": pick(rng, NAMES), "place": pick(rng, NEAR_PLACES), "weekday": pick(rng, WEEKDAYS),
            "k": rng.randint(2, 10), "n": rng.randint(3, 20)}


def _every_k_days_build(s, style):
    days = s["k"] * (s["n"] - 1)
    w = writer(style, **s, nth=f"{native_number(s['n'])} 번째")
    question = w("{name|은/는} {weekday}에 처음 {place}에 간 뒤로 {k}일마다 {place}에 <갑니다|가요>. "
                 "처음 간 날을 첫 번째로 셀 때, {nth|(으)로} {place}에 가는 날은 무슨 <요일입니까?|요일이에요?>")
    steps = [w("첫 번째 날부터 {nth} 날까지는 {k}일씩 {m}번 <지납니다|지나요>.", m=s["n"] - 1),
             w("그러므로 {e}일 <뒤입니다|뒤예요>.", e=f"{s['k']} × {s['n'] - 1} = {days}")]
    more, answer = _weekday_steps(w, s["weekday"], days)
    return Worked(question, steps + more, answer, "")


# What an exercise is made of (Template.exercise) where it is not just the slots that are numbers: the working of
# clock/1 subtracts the minutes alone, clock/6 never uses the clock time it starts at, a weekday is computed with,
# and the month of calendar/3 and the year and month of calendar/4 only name the days (its month's length counts).
TEMPLATES = (
    Template("clock/1", 1, _same_hour_sample, _same_hour_build,
             exercise=lambda s: {"minute": s["start"] % 60, "minutes": s["minutes"]}),
    Template("clock/2", 1, _to_minutes_sample, _to_minutes_build),
    Template("clock/3", 2, _ride_sample, _ride_build),
    Template("clock/4", 2, _sleep_sample, _sleep_build),
    Template("clock/5", 3, _break_sample, _break_build),
    Template("clock/6", 3, _periods_sample, _periods_build,
             exercise=lambda s: {"lesson": s["lesson"], "rest": s["rest"], "k": s["k"]}),
    Template("calendar/1", 1, _event_sample, _event_build, exercise=lambda s: {**numbers(s), "today": s["today"]}),
    Template("calendar/2", 1, _weeks_sample, _weeks_build),
    Template("calendar/3", 2, _same_month_sample, _same_month_build,
             exercise=lambda s: {"day": s["day"], "day2": s["day2"], "weekday": s["weekday"]}),
    Template("calendar/4", 2, _days_between_sample, _days_between_build,
             exercise=lambda s: {"last": _month_end(s["year"], s["month"]), "day": s["day"], "day2": s["day2"]}),
    Template("calendar/5", 3, _real_date_sample, _real_date_build, exercise=_real_date_exercise),
    Template("calendar/6", 3, _every_k_days_sample, _every_k_days_build,
             exercise=lambda s: {**numbers(s), "weekday": s["weekday"]}),
)
