#!/usr/bin/env python3
"""Reference values for protocol/test/jinja-python-json.test.ts: request bodies whose `tools` and
`chat_template_kwargs` hold floats (integral ones such as `0.0` and `1e3`, and ones Python writes with an exponent),
read as vLLM 0.10.0 reads them (FastAPI's `json.loads`; pydantic keeps `dict[str, Any]` values as they are) and
rendered by real jinja2 in the environment transformers 4.53 builds (transformers/utils/chat_template_utils.py
`_compile_jinja_template`: ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, and its own `tojson` =
`json.dumps(x, ensure_ascii=…, indent=…, separators=…, sort_keys=…)`), with `tools` and the kwargs as variables.

Run once from the repository root with jinja2 >= 3.1, commit the output:
  python3 protocol/test/vectors/python-floats.py > protocol/test/vectors/python-floats.json
"""
import json
import sys

import jinja2
import jinja2.sandbox


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
env.filters["tojson"] = tojson

# Written as a client would send them (JSON text): the numbers are the point.
NUMBERS = ["0.0", "-0.0", "1.0", "-7.0", "100.00", "1e3", "1E+3", "2.5e2", "1e16", "1.5e300", "1e400", "-1e400",
           "0.1", "3.14", "1e-05", "2.5e-5", "1.5e-07", "0.0001", "123456.789", "5e-324", "7", "-3", "0", "1e21"]
# Integers past 2**53 are left out: Python keeps them exact, JavaScript's numbers cannot (kvroute renders the nearest
# double, as before).

bodies = []
for n in NUMBERS:
    bodies.append('{"model": "m", "messages": [{"role": "user", "content": "hi 1.0"}], "tools": [{"type": "function", '
                  '"function": {"name": "set_level", "description": "Level 2.0 of 3.0", "parameters": {"type": "object", '
                  '"properties": {"level": {"type": "number", "minimum": %s, "maximum": 10.0, "default": [%s, 1.5]}}}}}], '
                  '"chat_template_kwargs": {"threshold": %s, "flags": {"on": true, "ratio": %s}}}' % (n, n, n, n))
# Keys and strings for sort_keys and ensure_ascii, values nested in arrays, and a body with spaces in its numbers' places.
bodies.append('{"messages": [{"role": "user", "content": "x"}], "tools": [{"function": {"name": "k", "parameters": {"b": 1.0, "B": 2, "a": [0.0, {"é": 1e2}], '
              '"\\u00e9t\\u00e9": "caf\\u00e9 \\ud83d\\ude42 \\u007f \\u0001 \\u2028", "\\ue000": 0.5, "\\ud83d\\ude00": -0.0}}}]}')
# A lone surrogate (json.loads keeps it; json.dumps writes it raw, or escaped with ensure_ascii).
bodies.append('{"messages": [{"role": "user", "content": "x"}], "tools": [{"function": {"name": "lone \\ud800 \\u00e9", "parameters": {"v": 1.0}}}]}')
bodies.append('{ "tools" : [ { "function" : { "name" : "s" , "parameters" : { "x" : 2.0 , "y" : [ 1.0 , 2 ] } } } ] , "messages" : [ { "role" : "user" , "content" : "x" } ] }')

TEMPLATES = [
    "{{ tools | tojson }}",
    "{{ tools | tojson(indent=2) }}",
    "{{ tools | tojson(indent=0) }}",
    "{{ tools | tojson(indent='\\t') }}",
    "{{ tools | tojson(sort_keys=true) }}",
    "{{ tools | tojson(ensure_ascii=true) }}",
    "{{ tools | tojson(separators=(',', ':')) }}",
    "{{ tools | tojson(true, 4, none, true) }}",
    "{{ tools | tojson(indent=true) }}",
    "{{ tools | tojson(indent=false) }}",
    "{{ tools | tojson(sort_keys='yes', ensure_ascii=[1]) }}",
    "{{ tools | tojson(sort_keys='', ensure_ascii={}) }}",
    "{% for t in tools %}{{ t.function.name }}: {{ t.function.parameters }}{% endfor %}",
    "{% for t in tools %}{% for k, v in t.function.parameters.items() %}{{ k }}={{ v }};{% endfor %}{% endfor %}",
    "{% if threshold is defined %}{{ threshold }} {{ threshold | string }} {{ 'x' ~ threshold }} {{ flags.ratio }} {{ flags | tojson }}"
    " {{ [threshold, flags.ratio] | join('|') }}{% endif %}",
    "{% if threshold is defined %}{% if threshold %}truthy{% else %}falsy{% endif %} {{ threshold + 1 }} {{ threshold * 2 }}"
    " {{ threshold == 0 }}{% endif %}",
    "{% if threshold is defined %}{{ threshold is even }} {{ threshold is odd }} {{ flags.ratio is even }}{% endif %}",
]

cases = []
for body in bodies:
    parsed = json.loads(body)
    context = {"tools": parsed.get("tools"), **parsed.get("chat_template_kwargs", {})}
    for template in TEMPLATES:
        try:
            out = env.from_string(template).render(**context)
        except Exception as e:  # noqa: BLE001 - recorded, so the TypeScript side can skip what jinja2 refuses
            out = None
            error = f"{type(e).__name__}: {e}"
        else:
            error = None
        cases.append({"body": body, "template": template, "out": out, "error": error})

json.dump({"generator": "protocol/test/vectors/python-floats.py", "python": sys.version.split()[0],
           "jinja2": jinja2.__version__, "cases": cases}, sys.stdout, ensure_ascii=True, indent=1)
print()
