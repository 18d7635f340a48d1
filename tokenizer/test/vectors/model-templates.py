#!/usr/bin/env python3
"""Reference prompts for tokenizer/test/model-tokenizer.test.ts ("models' templates evaluated as jinja2 evaluates
them"): chats rendered with other models' own chat templates as vLLM 0.10.0 renders them, with real jinja2 and pydantic.

- The templates, in templates/ beside this file, are the models' own chat_template from their tokenizer_config.json
  (as @huggingface/jinja's tests/e2e carry them): openbmb/MiniCPM3-4B, mistralai/Mistral-Nemo-Instruct-2407.
  A template may instead be given inline (`source`), and be written as chat_template.jinja (`file`) rather than
  into tokenizer_config.json.
- They are rendered in the environment transformers 4.53 builds (transformers/utils/chat_template_utils.py
  `_compile_jinja_template`: ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, `tojson` =
  json.dumps(ensure_ascii=False), `raise_exception`), with `messages`, `tools` (vLLM's `model_dump()` of each tool,
  through protocol/test/vectors/conversation.py), `add_generation_prompt` and the test's special tokens.

Run once from the repository root, commit the output (needs jinja2 >= 3.1 and pydantic 2):
  python3 tokenizer/test/vectors/model-templates.py > tokenizer/test/vectors/model-templates.json
"""
import json
import os
import sys

import jinja2
import jinja2.ext
import jinja2.sandbox
from pydantic import TypeAdapter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "protocol", "test", "vectors"))
from conversation import ChatCompletionToolsParam, conversation  # noqa: E402


def compile_template(text):
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env.from_string(text)


def template(name):
    with open(os.path.join(HERE, "templates", name + ".jinja"), encoding="utf-8", newline="") as f:
        return f.read()


# The special tokens the test's tokenizer_config.json sets.
SPECIAL = {"bos_token": "<s>", "eos_token": "</s>"}

CRLF_TEMPLATE = ("{% for message in messages %}\r\n<|im_start|>{{ message.role }}\r\n{{ message.content }}<|im_end|>\r\n{% endfor %}\r\n"
                 "{% if add_generation_prompt %}<|im_start|>assistant\r\n{% endif %}\r\n")

CASES = {
    # MiniCPM3 prints an enum parameter's type as `param_name|title`: jinja2's title filter lower-cases the rest of
    # each word (`Sortorder`).
    "MiniCPM3: an enum parameter named in camelCase": {
        "template": "MiniCPM3-4B",
        "tools": [{"type": "function", "function": {"name": "search", "description": "Search", "parameters": {
            "type": "object", "properties": {"sortOrder": {"type": "string", "enum": ["asc", "desc"], "description": "Order"}},
            "required": ["sortOrder"]}}}],
        "messages": [{"role": "user", "content": "Find cats"}],
    },
    # Mistral-Nemo (and Mistral v0.3) print the tools before the last user turn, found by `message == user_messages[-1]`:
    # Python compares dicts by value, so an earlier user turn equal to the last one gets [AVAILABLE_TOOLS] too.
    "Mistral-Nemo: a user turn equal to the last one": {
        "template": "Mistral-Nemo-Instruct-2407",
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "messages": [{"role": "user", "content": "Continue"}, {"role": "assistant", "content": "Part one."}, {"role": "user", "content": "Continue"}],
    },
    # A template saved with CRLF line endings. transformers reads chat_template.jinja in text mode (universal
    # newlines: tokenization_utils_base.py `open(chat_template_file, encoding="utf-8")`), and jinja2's lexer turns
    # "\r\n" and "\r" into "\n" in any template source (lexer.py `tokeniter`, newline_re), tokenizer_config.json's too.
    "a template with CRLF line endings, in tokenizer_config.json": {
        "source": CRLF_TEMPLATE, "tools": None, "messages": [{"role": "user", "content": "Hi"}],
    },
    "a template with CRLF line endings, as chat_template.jinja": {
        "source": CRLF_TEMPLATE, "file": True, "tools": None, "messages": [{"role": "user", "content": "Hi"}],
    },
}


def main():
    out = {"jinja2": jinja2.__version__, "cases": []}
    for name, case in CASES.items():
        tools = [t.model_dump() for t in TypeAdapter(list[ChatCompletionToolsParam]).validate_python(case["tools"])] if case["tools"] else None
        source = case["source"] if "source" in case else template(case["template"])
        # What transformers reads of a chat_template.jinja (text mode); tokenizer_config.json's as it is.
        read = source.replace("\r\n", "\n").replace("\r", "\n") if case.get("file") else source
        text = compile_template(read).render(messages=conversation(case["messages"]), tools=tools, add_generation_prompt=True, **SPECIAL)
        # The request body as a client sends it, keys in this order: the test reads it as the EPP does.
        body = json.dumps({"model": "m", "messages": case["messages"], **({"tools": case["tools"]} if case["tools"] else {})}, ensure_ascii=False)
        out["cases"].append({"name": name, "template": source, "file": case.get("file", False), "body": body, "text": text})
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
