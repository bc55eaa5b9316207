"""Personalised texts: ``{{ name }}``, ``{{ name | default("клиент") }}`` over a client's fields and
attributes, in Jinja2's immutable sandbox.

The language is cut down to what a text needs, and checked before it is stored: expressions
``{{ ... }}`` made of a variable and allowed filters with constant arguments, and comments
``{# ... #}``. Attribute and item access, calls, operators and statements (``{% ... %}``) are
refused with their position, so nothing a text can say reaches a Python object; the sandbox and an
empty set of globals stand behind that check, not in place of it. A text without ``{{``, ``{%`` or
``{#`` is plain: it is never parsed nor rendered, and costs what a text always cost.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.filters import FILTERS
from jinja2.sandbox import ImmutableSandboxedEnvironment

CLIENT_FIELDS = ("phone", "tag", "operator_code", "timezone")
"""The client's own columns a text may name; an attribute never takes one of these names."""
ALLOWED_FILTERS = ("default", "upper", "lower", "capitalize", "title", "trim")
_OPENERS = ("{{", "{%", "{#")
# A whole block: an expression, a statement or a comment, closed on the same or a later line.
_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=True, auto_reload=False)
    # No globals (range, cycler, joiner, namespace, lipsum, dict) and only the filters a text needs.
    env.globals.clear()
    env.filters = {name: FILTERS[name] for name in ALLOWED_FILTERS}
    env.tests = {}
    return env


_ENV = _environment()


class TemplateProblem(ValueError):
    """A text that cannot be a template: why, and where (1-based line and column)."""

    def __init__(self, reason: str, line: int, column: int, *, unknown: bool = False) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        self.unknown = unknown
        super().__init__(self.message)

    @property
    def message(self) -> str:
        rule = UNKNOWN_VARIABLE_RULE if self.unknown else SYNTAX_RULE
        return f"{rule}: {self.reason} (line {self.line}, column {self.column})"


SYNTAX_RULE = "must be a valid template"
UNKNOWN_VARIABLE_RULE = "must use only known variables"


def is_template(text: str) -> bool:
    """Whether the text uses template syntax at all: one that does not is sent as it is."""
    return any(opener in text for opener in _OPENERS)


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _check_expression(node: nodes.Node, known: Callable[[str], bool], where: tuple[int, int], used: set[str]) -> None:
    """Only a variable, through allowed filters with constant arguments."""
    if isinstance(node, nodes.Name):
        if node.name not in CLIENT_FIELDS and node.name not in used and not known(node.name):
            raise TemplateProblem(
                f"{node.name!r} is neither a client field ({', '.join(CLIENT_FIELDS)}) nor an attribute of any client",
                *where,
                unknown=True,
            )
        used.add(node.name)
        return
    if isinstance(node, nodes.Filter) and node.node is not None:
        if node.name not in ALLOWED_FILTERS:
            raise TemplateProblem(
                f"filter {node.name!r} is not allowed (allowed: {', '.join(ALLOWED_FILTERS)})", *where
            )
        if node.kwargs or node.dyn_args or node.dyn_kwargs or not all(isinstance(a, nodes.Const) for a in node.args):
            raise TemplateProblem(f"the arguments of {node.name!r} must be constants", *where)
        _check_expression(node.node, known, where, used)
        return
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return
    raise TemplateProblem(
        "only a variable and filters may stand in {{ }} (no attributes, items, calls or operators)", *where
    )


def _check_block(block: str, known: Callable[[str], bool], where: tuple[int, int], used: set[str]) -> None:
    if block.startswith("{#"):
        return
    if block.startswith("{%"):
        raise TemplateProblem("statements ({% %}) are not allowed, only {{ }} expressions", *where)
    try:
        parsed = _ENV.parse(block)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(exc.message or "syntax error", *where) from None
    outputs = parsed.body
    if len(outputs) != 1 or not isinstance(outputs[0], nodes.Output) or len(outputs[0].nodes) != 1:
        raise TemplateProblem("one expression per {{ }}", *where)
    _check_expression(outputs[0].nodes[0], known, where, used)


def check_template(text: str, known: Callable[[str], bool]) -> frozenset[str]:
    """The variables a text names, or :class:`TemplateProblem` at the first thing it may not say.
    ``known(name)`` tells whether a name is an attribute of some client; the client's fields always are."""
    used: set[str] = set()
    end = 0
    for match in _BLOCK.finditer(text):
        _check_stray(text, end, match.start())
        _check_block(match.group(), known, _position(text, match.start()), used)
        end = match.end()
    _check_stray(text, end, len(text))
    try:
        _ENV.parse(text)
    except TemplateSyntaxError as exc:  # whatever the blocks' checks let through
        raise TemplateProblem(exc.message or "syntax error", exc.lineno, 1) from None
    return frozenset(used)


def _check_stray(text: str, start: int, end: int) -> None:
    """An opener outside any closed block is a block never closed."""
    stretch = text[start:end]
    found = [(i, o) for o in _OPENERS if (i := stretch.find(o)) >= 0]
    if found:
        offset, opener = min(found)
        closer = {"{{": "}}", "{%": "%}", "{#": "#}"}[opener]
        raise TemplateProblem(f"{opener} is never closed by {closer}", *_position(text, start + offset))


def variables_of(text: str) -> frozenset[str]:
    """The names a stored (already checked) text uses."""
    if not is_template(text):
        return frozenset()
    found: set[str] = set()
    for match in _BLOCK.finditer(text):
        if match.group().startswith("{{"):
            found |= {n.name for n in _ENV.parse(match.group()).find_all(nodes.Name)}
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class Recipient:
    """What a text may name of one client."""

    phone: str
    tag: str = ""
    operator_code: str = ""
    timezone: str = ""
    attributes: Mapping[str, Any] | None = None

    def namespace(self) -> dict[str, Any]:
        values: dict[str, Any] = dict(self.attributes or {})
        values.update(phone=self.phone, tag=self.tag, operator_code=self.operator_code, timezone=self.timezone)
        return values


class Compiled:
    """A checked text compiled once: ``render`` is the per-message cost (a few microseconds)."""

    __slots__ = ("_render", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        if is_template(text):
            template = _ENV.from_string(text)
            root = template.root_render_func
            # One context for every render: a new one per message was two thirds of the cost. Safe
            # because a render is synchronous (no other render interleaves in this thread) and a
            # checked text has no statement that could write into the context; its variables are
            # the whole of it (no globals), and a missing one is Jinja's Undefined, rendered empty.
            context = template.new_context({}, shared=True)

            def render(values: dict[str, Any]) -> str:
                context.parent = values
                return "".join(root(context))

            self._render: Callable[[dict[str, Any]], str] | None = render
        else:
            self._render = None

    @property
    def personalised(self) -> bool:
        return self._render is not None

    def render(self, recipient: Recipient) -> str:
        if self._render is None:
            return self.text
        return self._render(recipient.namespace())


class CompiledCache:
    """One compiled template per mailing version, reused by every batch a worker runs for it. A text
    change does not re-plan a mailing (running batches take the new text), so the text is part of
    the key beside the mailing id and plan version; old entries go first once it is full."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._entries: dict[tuple[int, int], Compiled] = {}

    def get(self, mailing_id: int, plan_version: int, text: str) -> Compiled:
        key = (mailing_id, plan_version)
        compiled = self._entries.get(key)
        if compiled is None or compiled.text != text:
            compiled = Compiled(text)
            self._entries.pop(key, None)
            if len(self._entries) >= self._size:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = compiled
        return compiled


def known_in(names: Collection[str]) -> Callable[[str], bool]:
    return names.__contains__
