#!/usr/bin/env python3
"""Reference values for protocol/test/conversation.test.ts: the messages and tools vLLM 0.10.0 hands a chat template.

The validation is real pydantic (2.13 here; vLLM 0.10.0 requires pydantic >= 2.10) over the models restated from
vllm/entrypoints/openai/protocol.py @ v0.10.0 (OpenAIBaseModel, FunctionDefinition, ChatCompletionToolsParam) and
openai-python's TypedDicts (ChatCompletionMessageToolCallParam and its Function: id, function{arguments, name}, type;
vLLM's CustomChatCompletionMessageParam, chat_utils.py L187-206). The message code is vLLM's `_parse_chat_message_content`
and `_postprocess_messages` (chat_utils.py L1173-1228) restated for the non-content fields; `tojson` is transformers'
(`json.dumps(x, ensure_ascii=False)`, transformers/utils/chat_template_utils.py @ v4.53).

Run once, commit the output (needs pydantic 2):  python3 conversation.py > conversation.json
"""
import json
import sys
from collections.abc import Iterable
from typing import Any, Literal, Optional, Union

import pydantic
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from typing_extensions import Required, TypedDict


class OpenAIBaseModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class FunctionDefinition(OpenAIBaseModel):
    name: str
    description: Optional[str] = None
    parameters: Optional[dict[str, Any]] = None


class ChatCompletionToolsParam(OpenAIBaseModel):
    type: Literal["function"] = "function"
    function: FunctionDefinition


class Function(TypedDict, total=False):
    arguments: Required[str]
    name: Required[str]


class ChatCompletionMessageToolCallParam(TypedDict, total=False):
    id: Required[str]
    function: Required[Function]
    type: Required[Literal["function"]]


class CustomChatCompletionMessageParam(TypedDict, total=False):
    role: Required[str]
    content: Union[str, list[dict[str, Any]]]
    name: str
    tool_call_id: Optional[str]
    tool_calls: Optional[Iterable[ChatCompletionMessageToolCallParam]]


def tojson(x):
    return json.dumps(x, ensure_ascii=False)


def conversation(messages):
    """_parse_chat_message_content's non-content fields, then _postprocess_messages."""
    validated = TypeAdapter(list[CustomChatCompletionMessageParam]).validate_python(messages)
    out = []
    for message in validated:
        result = {"role": message["role"], "content": message.get("content")}
        if message["role"] == "assistant":
            if "tool_calls" in message and message["tool_calls"] is not None:
                result["tool_calls"] = list(message["tool_calls"])
        elif message["role"] == "tool":
            if "tool_call_id" in message:
                result["tool_call_id"] = message["tool_call_id"]
        if "name" in message and isinstance(message["name"], str):
            result["name"] = message["name"]
        out.append(result)
    for message in out:
        if message["role"] == "assistant" and "tool_calls" in message and isinstance(message["tool_calls"], list):
            for item in message["tool_calls"]:
                item["function"]["arguments"] = json.loads(item["function"]["arguments"])
    return out


def call(arguments, id="call_1", name="f"):
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


ARGUMENTS = [
    '{"city": "Paris"}', '{"city":"Paris","days":3}', '{ "a" : [1, 2.5, true, null] }', '{"b": 1, "a": 2}',
    '{"x": 1.0}', '{"x": 0.0}', '{"x": -0.0}', '{"x": 1e2}', '{"x": 1.5e2}', '{"x": 2.5}', '{"x": 0.1}',
    '{"x": 0.0001}', '{"x": 0.00001}', '{"x": 1.5e-7}', '{"x": 123456789.125}', '{"x": 1.5e15}', '{"x": 1.5e16}',
    '{"x": 9007199254740993}', '{"x": 9007199254740991}', '{"x": -12}', '{"x": 1e400}', '{"x": NaN}',
    '{"x": -Infinity}', '{"2": "b", "1": "a", "k": 0}', '{"k": {"10": 1}}', '"just a string"', '[1, "two"]', '42',
    '{"s": "caf\\u00e9 \\n \\"q\\" \\\\ \\u0001 \\u2028 </tag>"}', '{"s": "\\ud800"}', '{"a": 1, "a": 2, "b": 3}',
    '{"nested": {"deep": [{"k": "v"}, []], "empty": {}}}', '{"k": "v"} ', ' [ ] ',
]

BAD_ARGUMENTS = ['', '{"a": }', '{"a": 1,}', '{\n  "a": tru\n}', 'not json', '{"a": 1} x', "{'a': 1}"]

MESSAGES = {
    "fields kept and dropped": [
        {"role": "system", "content": "s", "name": "sys", "extra": 1},
        {"role": "user", "content": "u", "name": "me", "tool_call_id": "x"},
        {"role": "assistant", "content": "a", "reasoning_content": "thinking", "tool_calls": None, "name": "bot"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "index": 0, "function": {"name": "f", "arguments": '{"b": 1, "a": [2]}', "x": 1}, "id": "c1"},
            call('{"q": "w"}', id="c2", name="g"),
        ]},
        {"role": "tool", "content": "r", "tool_call_id": "c1", "tool_calls": [call("{}")]},
        {"role": "tool", "content": "r2", "tool_call_id": None},
        {"role": "tool", "content": "r3"},
        {"role": "user", "content": "u2", "tool_calls": [5]},
        {"role": "custom", "content": "c", "tool_calls": [call("{}")], "name": "n"},
    ],
    "tool calls empty": [{"role": "assistant", "content": "a", "tool_calls": []}],
    "tool call missing id": [{"role": "assistant", "content": "a", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]}],
    "tool call arguments not a string": [{"role": "assistant", "content": "a", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": {}}}]}],
    "tool call missing type": [{"role": "assistant", "content": "a", "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": "{}"}}]}],
    "tool call wrong type": [{"role": "assistant", "content": "a", "tool_calls": [{"id": "a", "type": "code", "function": {"name": "f", "arguments": "{}"}}]}],
    "tool call not a dict": [{"role": "assistant", "content": "a", "tool_calls": ["x"]}],
    "tool calls a string": [{"role": "assistant", "content": "a", "tool_calls": "ab"}],
    "tool call function missing name": [{"role": "assistant", "content": "a", "tool_calls": [{"id": "a", "type": "function", "function": {"arguments": "{}"}}]}],
    "item error before a JSON error": [
        {"role": "assistant", "content": "a", "tool_calls": [call("not json")]},
        {"role": "assistant", "content": "b", "tool_calls": [{"id": "a"}]},
    ],
}

TOOLS = {
    "complete, in order": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}],
    "function first, fields shuffled, extras": [{"function": {"parameters": {"z": 1, "a": [True, None]}, "strict": True, "name": "f"}, "type": "function", "x-extra": {"k": "v"}}],
    "no type, no description, no parameters": [{"function": {"name": "g"}}],
    "explicit nulls": [{"type": "function", "function": {"name": "g", "description": None, "parameters": None}}],
    "two tools": [{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "b", "description": "x"}}],
    "not a dict": [5],
    "wrong type": [{"type": "code", "function": {"name": "f"}}],
    "missing function": [{"type": "function"}],
    "function not a dict": [{"function": "f"}],
    "missing name": [{"function": {"description": "d"}}],
    "name not a string": [{"function": {"name": 5}}],
    "description not a string": [{"function": {"name": "f", "description": 5}}],
    "parameters not a dict": [{"function": {"name": "f", "parameters": [1]}}],
}


def main():
    cases = {"python": sys.version.split()[0], "pydantic": pydantic.VERSION, "arguments": [], "bad_arguments": [],
             "messages": [], "tools": []}
    for text in ARGUMENTS:
        value = json.loads(text)
        cases["arguments"].append({"text": text, "tojson": tojson(value)})
    for text in BAD_ARGUMENTS:
        try:
            json.loads(text)
            raise AssertionError(text)
        except json.JSONDecodeError as e:
            cases["bad_arguments"].append({"text": text, "error": f"{e} {e.__cause__}"})
    for name, messages in MESSAGES.items():
        try:
            cases["messages"].append({"name": name, "input": messages, "output": conversation(messages)})
        except (ValueError, TypeError) as e:
            # vLLM answers f"{e} {e.__cause__}". A pydantic error's text goes on after "[type=…" with input_value
            # details and a versioned URL, which kvroute does not reproduce; the test compares up to there.
            cases["messages"].append({"name": name, "input": messages, "error": f"{e} {e.__cause__}"})
    for name, tools in TOOLS.items():
        try:
            dumped = [t.model_dump() for t in TypeAdapter(list[ChatCompletionToolsParam]).validate_python(tools)]
            cases["tools"].append({"name": name, "input": tools, "output": dumped, "tojson": [tojson(t) for t in dumped]})
        except ValidationError as e:
            first = e.errors()[0]
            cases["tools"].append({"name": name, "input": tools, "error": {"loc": ["tools", *first["loc"]], "type": first["type"], "msg": first["msg"]}})
    json.dump(cases, sys.stdout, indent=1)  # ASCII: a lone surrogate is a case
    print()


if __name__ == "__main__":
    main()
