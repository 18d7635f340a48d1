#!/usr/bin/env python3
"""Reference values for protocol/test/jinja-python-strings.test.ts: `str.strip`, `lstrip` and `rstrip` as a chat
template calls them in jinja2 (the sandbox transformers renders in calls the Python methods), with and without an
argument, the `trim` filter, `split()` without a separator, and how values print. Run once, commit the output:  python3 python-strings.py > python-strings.json
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

json.dump({"jinja2": jinja2.__version__, "python": sys.version.split()[0], "cases": cases, "trims": trims, "splits": splits, "printing": printing}, sys.stdout, indent=1)
print()
