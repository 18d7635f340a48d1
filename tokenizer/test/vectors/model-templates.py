#!/usr/bin/env python3
"""Reference prompts for tokenizer/test/model-tokenizer.test.ts ("models' templates evaluated as jinja2 evaluates
them"): chats rendered with other models' own chat templates as vLLM 0.10.0 renders them, with real jinja2 and pydantic.

- The templates, in templates/ beside this file, are the models' own chat_template from their tokenizer_config.json
  (as @huggingface/jinja's tests/e2e carry them): openbmb/MiniCPM3-4B, mistralai/Mistral-Nemo-Instruct-2407.
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
}


def main():
    out = {"jinja2": jinja2.__version__, "cases": []}
    for name, case in CASES.items():
        tools = [t.model_dump() for t in TypeAdapter(list[ChatCompletionToolsParam]).validate_python(case["tools"])]
        source = template(case["template"])
        text = compile_template(source).render(messages=conversation(case["messages"]), tools=tools, add_generation_prompt=True, **SPECIAL)
        # The request body as a client sends it, keys in this order: the test reads it as the EPP does.
        body = json.dumps({"model": "m", "messages": case["messages"], "tools": case["tools"]}, ensure_ascii=False)
        out["cases"].append({"name": name, "template": source, "body": body, "text": text})
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
    print()


if __name__ == "__main__":
    main()
