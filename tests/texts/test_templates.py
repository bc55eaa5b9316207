"""The template language of personalised texts: what renders, what is refused and where, and the parts
of each rendered text against an independent counter (smsutil)."""

from __future__ import annotations

import pytest
import smsutil

from notification.mailings.sms import Encoding, measure
from notification.texts.service import least_cost
from notification.texts.templates import (
    Compiled,
    CompiledCache,
    Recipient,
    TemplateProblem,
    check_template,
    is_template,
)

ORDER_TEXT = '{{ name | default("клиент") }}, ваш заказ {{ order }} готов'


def anna(**attributes: str) -> Recipient:
    return Recipient("79161234567", "vip", "916", "Europe/Moscow", attributes)


def test_present_values_render() -> None:
    assert Compiled(ORDER_TEXT).render(anna(name="Анна", order="A-17")) == "Анна, ваш заказ A-17 готов"


def test_a_missing_value_renders_empty_and_a_default_stands_in() -> None:
    assert Compiled(ORDER_TEXT).render(anna()) == "клиент, ваш заказ  готов"


def test_client_fields_render_and_win_over_nothing() -> None:
    text = "{{ phone }} {{ tag | upper }} {{ operator_code }} {{ timezone }}"
    assert Compiled(text).render(anna()) == "79161234567 VIP 916 Europe/Moscow"


def test_a_plain_text_is_never_parsed_nor_rendered() -> None:
    compiled = Compiled("Winter sale, 20% off {not a template}")
    assert not is_template(compiled.text)
    assert not compiled.personalised
    assert compiled.render(anna(name="x")) == "Winter sale, 20% off {not a template}"


def test_a_value_is_text_not_template() -> None:
    assert Compiled("{{ name }}").render(anna(name="{{ phone }}")) == "{{ phone }}"


@pytest.mark.parametrize(
    "text",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ name.__class__ }}",
        "{{ name['__class__'] }}",
        "{{ name | attr('__class__') }}",
        "{{ lipsum() }}",
        "{{ name ~ phone }}",
        "{% for x in range(10) %}x{% endfor %}",
        "{% set x = 1 %}",
    ],
)
def test_escapes_and_anything_beyond_names_and_filters_are_refused(text: str) -> None:
    with pytest.raises(TemplateProblem) as refused:
        check_template(text, lambda _: True)
    assert not refused.value.unknown
    assert refused.value.message.startswith("must be a valid template: ")


def test_even_unchecked_the_sandbox_has_no_globals() -> None:
    # The check is the first line; the environment itself knows no cycler, range or lipsum.
    assert Compiled("{{ cycler }}{{ range }}{{ lipsum }}").render(anna()) == ""


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("Hello {{ nmae }}", 1, 7),
        ("Hello\n  {{ name }} and {{ nmae | default('x') }}", 2, 18),
    ],
)
def test_an_unknown_variable_is_refused_at_its_position(text: str, line: int, column: int) -> None:
    with pytest.raises(TemplateProblem) as refused:
        check_template(text, {"name"}.__contains__)
    assert refused.value.unknown
    assert (refused.value.line, refused.value.column) == (line, column)
    assert "'nmae'" in refused.value.message
    assert refused.value.message.startswith("must use only known variables: ")
    assert f"(line {line}, column {column})" in refused.value.message


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("Hi {{ name", 1, 4),
        ("one\ntwo {{ name }} {{ }}", 2, 16),
        ("{{ name | nope }}", 1, 1),
        ("a {{ name | default(phone) }}", 1, 3),
    ],
)
def test_a_syntax_error_is_refused_at_its_position(text: str, line: int, column: int) -> None:
    with pytest.raises(TemplateProblem) as refused:
        check_template(text, lambda _: True)
    assert (refused.value.line, refused.value.column) == (line, column)


def test_the_cache_compiles_once_per_mailing_version_and_follows_a_text_change() -> None:
    cache = CompiledCache(size=2)
    first = cache.get(1, 1, ORDER_TEXT)
    assert cache.get(1, 1, ORDER_TEXT) is first
    changed = cache.get(1, 1, "{{ name }}!")
    assert changed is not first
    assert changed.render(anna(name="Bo")) == "Bo!"
    assert cache.get(1, 2, "{{ name }}!") is not changed
    cache.get(2, 1, "x")
    assert cache.get(1, 1, "{{ name }}!") is not changed  # the oldest went first


@pytest.mark.parametrize(
    "name",
    ["Anna", "Jean-Pierre", "Maximilian-Alexander von Habsburg-Lothringen", "Анна", "Александра-Виктория", "Zoë 😀"],
)
@pytest.mark.parametrize("repeat", [1, 3])
def test_parts_per_recipient_match_smsutil(name: str, repeat: int) -> None:
    text = "Dear {{ name }}, your order is ready. " * repeat
    rendered = Compiled(text).render(anna(name=name))
    expected = smsutil.split(rendered)
    sms = measure(rendered)
    assert sms.parts == len(expected.parts), rendered
    assert sms.encoding is (Encoding.GSM7 if expected.encoding == "gsm0338" else Encoding.UCS2)


def test_a_template_costs_at_least_its_text_with_every_value_empty() -> None:
    cost = least_cost('{{ name | default("клиент") }}, hi')
    assert (cost.encoding.value, cost.units) == ("UCS-2", len("клиент, hi"))
