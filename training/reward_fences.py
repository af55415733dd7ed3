"""How the `language_consistency` reward (training/rewards.py) reads fenced text.

A reward is what the policy optimises, so it reads fences more strictly than the data gates do: a data gate keeps
a Korean answer that sets a translated English e-mail in an untagged fence, but a reward that exempted the Latin
letters of such fences paid an answer that moved its English reasoning into one behind a Korean label as fully
Korean, however the fence's lines read (short equations with English sentences between them read as code). Here only
a fence tagged with a programming, markup, config or shell language (```python, ```json, ```bash, ```latex) is code;
the letters of every other fence (untagged, ```text, ```markdown, or a made-up tag such as ```english) are the
answer's own, but for single-letter variables and a few function names (x = 3, f(x) = 2x + 1, sqrt(16) = 4).

    >>> answer_prose("풀이:\\n```\\nx = 3\\nSo y is five.\\n```\\n```python\\nprint(total)\\n```").split()
    ['풀이:', '=', '3', 'So', 'is', 'five.']
"""

from __future__ import annotations

import re

# data_tools.text's one fence parser, which the data gates read fences with too
from data_tools.text import fence_pieces, prose, reads_as_prose

# Fence tags whose block is code (the first word of the info string, lower-cased, without "{" "." "}"): languages
# a Korean answer shows code, data, markup, TeX or a terminal in. Any other tag reads as the answer's text, so a
# made-up one (```english, ```reasoning) hides nothing.
_CODE_TAGS = frozenset("""
    python py python3 py3 ipython pycon jupyter javascript js jsx mjs node typescript ts tsx java kotlin kt scala groovy
    c h cpp c++ cc cxx hpp objc objective-c cs csharp c# fsharp f# go golang rust rs swift dart ruby rb php perl pl lua
    r julia jl matlab octave haskell hs ocaml ml elixir ex erlang clojure clj lisp scheme racket zig nim fortran
    pascal vb vbnet assembly asm nasm wasm solidity sol cuda glsl hlsl verilog vhdl
    sql mysql postgresql postgres plsql sqlite graphql gql
    bash sh shell zsh fish console terminal shell-session powershell ps1 pwsh bat cmd batch
    json jsonc json5 jsonl yaml yml toml ini cfg conf env properties xml html htm xhtml svg css scss sass less
    vue svelte dockerfile docker makefile make cmake nginx apache proto protobuf hcl terraform tf gradle
    latex tex math katex mermaid dot graphviz plantuml regex diff patch
""".split())

# what a fence's text may hold that is no word of a language: a single-letter variable (Latin or Greek: x, θ, the x
# of 2x) and a few function names of arithmetic
_VARIABLES = re.compile(r"(?<![A-Za-z\u0370-\u03ff])(?:[A-Za-z\u0370-\u03ff]|sin|cos|tan|log|ln|exp|sqrt|abs|max|"
                        r"min|gcd|lcm|mod)(?![A-Za-z\u0370-\u03ff])")


# a line a code block's language reads as a comment (its English is the code's, not the answer's): #, //, --, /*,
# a continued block comment's *, %, ;, <!--, a docstring's quotes, REM
_COMMENT = re.compile(r"\s*(?:#|//|--|/\*|\*|%|;|<!--|\"\"\"|\'\'\'|rem\b)", re.IGNORECASE)


def code_tag(tag: str) -> str:
    """A fence's language, as _CODE_TAGS names it: "{.python}", "python:main.py", "python title=x" read python."""
    return re.split(r"[:={}\s]", tag.strip("{."), maxsplit=1)[0]


def sentences_in_code(body: str) -> str:
    """The lines of a code block that are sentences, ending as one (. ! ?), and no comment: English reasoning a
    policy set between code lines (a program holds none; its comments are the code's own, and a shell command
    such as "pip install numpy && python solve.py" reads as words but ends as no sentence)."""
    return "\n".join(line for line in body.splitlines() if not _COMMENT.match(line)
                     and line.rstrip().endswith((".", "!", "?")) and reads_as_prose(line))


def answer_prose(text: str, fenced: bool = False) -> str:
    """The text whose letters are the answer's own: prose() of the text outside fences and of every fence not tagged
    with a code language (_CODE_TAGS), read again for the fences nested in it, without the variables of a fence's
    arithmetic (`fenced`). Code, TeX math and unit symbols after numbers are left out, as prose() leaves them.

        >>> answer_prose("번역:\\n```text\\nDear Ms. Kim,\\n```\\n```py\\nx = 1\\n```").split()
        ['번역:', 'Dear', 'Ms.', 'Kim,']
    """
    said = []
    for piece, tag in fence_pieces(text):
        if tag is None:
            said.append(_VARIABLES.sub(" ", prose(piece)) if fenced else prose(piece))
        elif code_tag(tag) not in _CODE_TAGS:
            said.append(answer_prose(piece, fenced=True))
        else:  # code: its sentences outside comments are the answer's (English hidden behind a ```python tag)
            said.append(_VARIABLES.sub(" ", prose(sentences_in_code(piece))))
    return "\n".join(said)
