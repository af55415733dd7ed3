"""Fenced blocks told as code or prose (data_tools/text.py _looks_like_code) on a labelled set: code in many
languages stays code; English and Korean reasoning with arithmetic ("1,500 / 3 = 500 won") is prose, whose letters
the language reward and the hangul_share gate count. Before, any "=" or "word(" made a line code and a third of such
lines made the block code, so English reasoning moved into an untagged fence was paid as Korean."""

from __future__ import annotations

import time

import pytest

from data_tools.text import _looks_like_code, prose

CODE = {
    "python": 'def total(prices):\n    """Sum the prices."""\n    result = 0\n    for price in prices:\n'
              "        result += price\n    return result",
    "python comment": "result = compute(a, b)  # comment with several words that explain it\nprint(result)",
    "python strings": 'name = input("What is your name? ")\nprint("Hello there, it is nice to meet you all.")\n'
                      'print(f"Welcome back to the program, {name}.")',
    "python loop": "for item in items:\n    if item.price > 100 and not item.sold:\n        cart.append(item)",
    "python imports": "import numpy as np\nfrom collections import Counter\n\nx = np.zeros(3)",
    "assignment": "x = 1",
    "javascript": "const total = items.reduce((sum, item) => sum + item.price, 0);\n"
                  'console.log("The total price of all the items in the cart is", total);',
    "typescript": "function greet(name: string): string {\n  return `Hello, ${name}`;\n}",
    "sql": "SELECT name, price\nFROM items\nWHERE price > 100\nORDER BY name;",
    "shell": "$ pip install torch transformers\n$ git commit -m \"fix the bug in the parser\"\n$ ls -la",
    "shell script": "#!/bin/bash\necho \"Starting the backup of all the files now\"\ncd /var/backups\ntar czf a.tgz .",
    "json": '{\n  "name": "kosov",\n  "version": "0.1.0",\n  "description": "Korean adaptation of open models",\n'
            '  "license": "Apache-2.0",\n  "private": true\n}',
    "config": "[training]\nlearning_rate = 0.001\nbatch_size = 16\noutput_dir = runs/first run of the model",
    "html": '<div class="card">\n  <p>This is a paragraph of text that explains the page.</p>\n</div>',
    "c": "#include <stdio.h>\n\nint main(void) {\n    printf(\"Hello, world!\\n\");\n    return 0;\n}",
    "java": 'public class Main {\n    public static void main(String[] args) {\n'
            '        System.out.println("Three apples cost 1,500 won in total.");\n    }\n}',
    "go": 'func main() {\n\tfmt.Println("hello")\n}',
    "rust": "let prices = vec![500, 700];\nlet total: u32 = prices.iter().sum();",
    "css": ".card {\n  color: red;\n  margin: 0 auto;\n}",
}

PROSE = {
    "english reasoning": "Three apples cost 1,500 won, so one apple costs 1,500 / 3 = 500 won.\n"
                         "Therefore the price of one apple is 500 won.",
    "english with equations": "Three apples cost 1,500 won in total.\n1,500 / 3 = 500\n"
                              "So one apple costs 500 won, and five apples cost 5 × 500 = 2,500 won.",
    "english with a parenthesis after a word": "First we buy one apple(500 won) and one pear(700 won).\n"
                                               "Together they cost 500 + 700 = 1,200 won.",
    "english with a semicolon": "The train leaves at 3 pm; it arrives 2 hours later, at 5 pm.\n"
                                "The trip takes 120 / 60 = 2 hours.",
    "english lines opening with keywords": "if each pen costs 800 won, then 4 pens cost 4 × 800 = 3,200 won.\n"
                                           "for the change we pay 5,000 - 3,200 = 1,800 won back.",
    "english quoting": 'The teacher said "the answer is 12" and we agree, since 3 × 4 = 12.\n'
                       "We check it again: 12 / 4 = 3, which matches the number of boxes.",
    "english word problem": "Let the number of students be 30.\nHalf of them, 30 / 2 = 15, take the bus.\n"
                            "The rest walk, so 30 - 15 = 15 students walk to school.",
    "korean reasoning": "사과 세 개가 1,500원이므로 사과 한 개는 1,500 / 3 = 500원입니다.\n"
                        "따라서 사과 한 개의 가격은 500원입니다.",
    "korean with an unknown": "사과 한 개의 가격을 x라고 하면 3x = 1,500입니다.\n"
                              "양변을 3으로 나누면 한 개의 가격은 500원입니다.",
    "korean with equations": "전체 학생 수는 30명입니다.\n30 × 2 / 3 = 20\n따라서 버스를 타는 학생은 20명입니다.",
    "korean with parentheses": "연필(800원) 네 자루의 값은 800 × 4 = 3,200원이고,\n"
                               "지우개(500원)까지 더하면 3,200 + 500 = 3,700원입니다.",
    "korean mixed": "속력 = 거리 / 시간이므로 120km를 2시간에 가면 시속 60km입니다.\n"
                    "다시 말해 한 시간에 60km를 가는 셈입니다.",
}


@pytest.mark.parametrize("name", CODE)
def test_code_in_an_untagged_fence_is_code(name):
    assert _looks_like_code(CODE[name].splitlines())


@pytest.mark.parametrize("name", PROSE)
def test_reasoning_with_arithmetic_in_an_untagged_fence_is_prose(name):
    assert not _looks_like_code(PROSE[name].splitlines())


def test_english_reasoning_in_a_fence_keeps_its_letters_and_code_does_not():
    answer = f"풀이입니다.\n```\n{PROSE['english reasoning']}\n```\n예시 코드:\n```\n{CODE['python comment']}\n```"
    assert "Therefore the price of one apple" in prose(answer) and "compute" not in prose(answer)


@pytest.mark.parametrize("line", ["Three apples cost 1,500 won, so one costs 1,500 / 3 = 500 won.",
                                  "x(" * 3 + "1,,,,," * 5 + "'a'b\" = ", "if " + "))))" * 5 + " = 연필(800원)까지"])
@pytest.mark.parametrize("newline", [" ", "\n"])  # one 20,000-character line, or many short ones
def test_a_20000_character_fence_is_read_in_linear_time(line, newline):
    """About 0.03 s on a 2-core machine; the bound is doubled for a loaded one (quadratic time takes seconds)."""
    block = ((line + newline) * (20_000 // len(line) + 1))[:20_000]
    start = time.perf_counter()
    prose(f"```\n{block}\n```")
    assert time.perf_counter() - start < 0.1
