#!/usr/bin/env python3
"""Reference values for protocol/test/jinja-python-strings.test.ts: `str.strip`, `lstrip` and `rstrip` as a chat
template calls them in jinja2 (the sandbox transformers renders in calls the Python methods), with and without an
argument, the `trim` filter, `split()` without a separator, `title` and `capitalize` as filters (jinja2's `do_title`, its
own word split, and `do_capitalize`) and as str methods, `==`, `!=` and `in` (Python's operators, which jinja2
compiles them to), and how values print. Run once, commit the output:  python3 python-strings.py > python-strings.json
"""
import json
import sys

import jinja2
import jinja2.sandbox

env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

STRINGS = [
    "", "plain", "\n\nreasoning \n", " \t\nboth sides\t \n", "\n</think>\n\n answer", "reasoning \n</think>",
    "xxabcxx", "\u00a0nbsp\u00a0", "\u3000ideographic\u3000", "\x1cfile sep\x1f", "\ufeffbom\ufeff", "\x85next line\x85",
    "\u200bzero width\u200b", "emoji 🙂🙂", "🙂 pad 🙂", "\r\n crlf \r\n",
]
CHARS = [None, "\n", " \n", "x", "🙂", "", "ab"]

cases = []
for s in STRINGS:
    for method in ["strip", "lstrip", "rstrip"]:
        for chars in CHARS:
            call = f"s.{method}()" if chars is None else f"s.{method}(c)"
            out = env.from_string("{{ " + call + " }}").render(s=s, c=chars)
            cases.append({"s": s, "method": method, "chars": chars, "out": out})

# The `trim` filter (jinja2's do_trim: str(value).strip(chars)) and split() without a separator.
trims = []
for s in STRINGS:
    for chars in [None, "\n", " x"]:
        template = "{{ s | trim }}" if chars is None else "{{ s | trim(c) }}"
        trims.append({"s": s, "chars": chars, "out": env.from_string(template).render(s=s, c=chars)})
splits = []
for s in STRINGS + ["a  b\tc", "  lead and trail  ", "x\x1cy\x85z\ufeffw", "one"]:
    for maxsplit in [None, 0, 1, 2]:
        template = "{{ s.split() | join('|') }}" if maxsplit is None else "{{ s.split(none, m) | join('|') }}"
        splits.append({"s": s, "maxsplit": maxsplit, "out": env.from_string(template).render(s=s, m=maxsplit)})

# Printing values: {{ x }}, x | string, 'a' ~ x, x | join, inside lists and mappings. Values come from JSON (so no
# float with an integral value such as 1.5e16: JavaScript has none) or are template literals (a one-element tuple
# literal `(1,)` is left out: @huggingface/jinja reads it as 1).
VALUES = [True, False, None, 0, -7, 9007199254740991, 1.5, -0.25, 0.1, 1e-05, 1.5e-07, 123456.789, 2.5e300,
          "plain", "it's", 'say "hi"', "both ' and \"", "tab\tnew\nline\r", "ctl\x01\x7f\x85", "é 🙂 \u00a0\u2028 \u200b",
          "back\\slash", "", [], {}, [1, "a", None, True], {"k": "v", "n": None, "b": False, "l": [1.5, {"x": "y"}]},
          [["nested"], {"a": []}]]
TEMPLATES = ["{{ x }}", "{{ x | string }}", "{{ 'a' ~ x }}", "{{ [x] }}", "{{ {'k': x} }}", "{{ [x, x] | join(',') }}", "{{ [x] | join }}"]
printing = []
for x in VALUES:
    for t in TEMPLATES:
        printing.append({"template": t, "x": x, "out": env.from_string(t).render(x=x)})
# Undefined values (a missing attribute) and trim on what is not a string.
for t in ["{{ [m.missing, 'a'] | join(',') }}", "{{ '[' ~ m.missing ~ ']' }}", "{{ m.missing | string }}", "{{ [m.missing] }}",
          "{{ m.missing | trim }}", "{{ none | trim }}", "{{ 5 | trim }}", "{{ [' a '] | trim }}", "{{ m.parts | map(attribute='text') | join('') }}"]:
    m = {"parts": [{"type": "image"}, {"type": "text", "text": "hi"}]}
    printing.append({"template": t, "x": None, "m": m, "out": env.from_string(t).render(x=None, m=m)})
for t in ["{{ 1.0 }}", "{{ 2.50 }}", "{{ 3 / 2 }}", "{{ 4 / 2 }}", "{{ (1, 'a') }}", "{{ none }}", "{{ true ~ none }}",
          "{% set y = 1 %}{{ y }}", "{% if x is none %}{{ x }}{% endif %}", "{{ [none, true] | join('-') }}"]:
    printing.append({"template": t, "x": None, "out": env.from_string(t).render(x=None)})

# Casing: jinja2's title filter (`item[0].upper() + item[1:].lower()` over `([-\s({\[<]+)` splits), its capitalize
# filter (str.capitalize) and Python's str.title() / str.capitalize() (titlecase first, lower-case after a cased
# character, the final sigma in context). The last strings hold every character whose titlecase is not its uppercase.
TITLECASE_NOT_UPPER = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000 and chr(c).title() != chr(c).upper())
CASED = ["sortOrder", "maxResults", "hello world", "HELLO wORLD", "it's o'neil", "x-ray (beta)[gamma]{delta}<eps>", "a\tb\nc",
         "  lead", "snake_case_name", "123abc 4ever", "ÉCOLE été", "ßtraße", "ǆungla ǉ ǌ", "ΣΑΣ ΟΔΟΣ.", "ΑΣ'Σ", "İstanbul",
         "ﬁne ﬂow", "ᾳ ᾲ ᾷ", "", " ".join(TITLECASE_NOT_UPPER), TITLECASE_NOT_UPPER]
casing = []
for s in CASED:
    for t in ["{{ s | title }}", "{{ s | capitalize }}", "{{ s.title() }}", "{{ s.capitalize() }}"]:
        casing.append({"template": t, "s": s, "out": env.from_string(t).render(s=s)})

# Comparisons: `==`, `!=` and `in` are Python's (values from JSON, so no tuples among them but the literal ones).
COMPARED = [1, 1.0, True, 0, False, "1", "a", None, [], [1, "a"], [1.0, "a"], ["a", 1], {}, {"role": "user", "content": "Continue"},
            {"content": "Continue", "role": "user"}, {"role": "user", "content": "continue"}, [{"role": "user"}], {"1": 1}]
equality = []
for a in COMPARED:
    for b in COMPARED:
        for t in ["{{ a == b }}", "{{ a != b }}"]:
            equality.append({"template": t, "a": a, "b": b, "out": env.from_string(t).render(a=a, b=b)})
    for b in [COMPARED, [[1, "a"]], [{"content": "Continue", "role": "user"}], ["1", "a"], {"1": 1, "a": 2}, "a1"]:
        if (isinstance(b, str) and not isinstance(a, str)) or (isinstance(b, dict) and isinstance(a, (list, dict))):
            continue  # TypeError in Python
        for t in ["{{ a in b }}", "{{ a not in b }}"]:
            equality.append({"template": t, "a": a, "b": b, "out": env.from_string(t).render(a=a, b=b)})
for t in ["{{ [1, 2] == (1, 2) }}", "{{ (1, 2) == (1, 2) }}", "{{ m.missing == m.other }}", "{{ m.missing == none }}",
          "{{ 1 in (1, 2) }}", "{{ m.missing in [1] }}", "{{ 'a' in m.missing }}"]:
    equality.append({"template": t, "a": None, "b": None, "m": {}, "out": env.from_string(t).render(m={})})

json.dump({"jinja2": jinja2.__version__, "python": sys.version.split()[0], "cases": cases, "trims": trims, "splits": splits, "printing": printing, "casing": casing, "equality": equality}, sys.stdout, indent=1)
print()
