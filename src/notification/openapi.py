"""The OpenAPI document and the pages that render it: Swagger UI served from the package's own
files, and struct schemas that say everything msgspec enforces."""

from __future__ import annotations

from inspect import cleandoc
from typing import TYPE_CHECKING

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, OpenAPIType, Schema

from notification import __version__
from notification.assets import static_url

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.typing import FieldDefinition

DOCS_PATH = "/docs"
SWAGGER_UI = "vendor/swagger-ui/5.35.0"


def openapi_config(components: Components) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="notification",
        version=__version__,
        description="Client directory, SMS mailings and their delivery statistics.",
        path=DOCS_PATH,
        render_plugins=[
            SwaggerRenderPlugin(
                path="/",
                js_url=static_url(f"{SWAGGER_UI}/swagger-ui-bundle.js"),
                css_url=static_url(f"{SWAGGER_UI}/swagger-ui.css"),
                standalone_preset_js_url=static_url(f"{SWAGGER_UI}/swagger-ui-standalone-preset.js"),
                favicon=f"<link rel='icon' type='image/png' href='{static_url(f'{SWAGGER_UI}/favicon-32x32.png')}'>",
            )
        ],
        components=components,
    )


class StrictStructSchemaPlugin(StructSchemaPlugin):
    """Litestar's schema of a msgspec struct, plus what msgspec enforces and Litestar leaves out:
    unknown fields refused, the constraints on a list's items, and the struct's own docstring."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        info = msgspec.inspect.type_info(field_definition.type_)
        if not isinstance(info, msgspec.inspect.StructType):
            return schema
        if info.forbid_unknown_fields:
            schema.additional_properties = False
        if doc := getattr(field_definition.type_, "__doc__", None):
            schema.description = cleandoc(doc)
        for field in info.fields:
            prop = (schema.properties or {}).get(field.encode_name)
            if isinstance(prop, Schema):
                _constrain(prop, field.type)
        return schema


def _constrain(prop: Schema, field_type: msgspec.inspect.Type) -> None:
    """Puts on ``prop`` what msgspec enforces of ``field_type``. An optional field is a ``oneOf``
    with null, where Litestar keeps none of its type's constraints: they go on its non-null branch."""
    if isinstance(field_type, msgspec.inspect.Metadata):
        field_type = field_type.type
    if isinstance(field_type, msgspec.inspect.UnionType):
        branches = [t for t in field_type.types if not isinstance(t, msgspec.inspect.NoneType)]
        schemas = [b for b in prop.one_of or () if isinstance(b, Schema) and b.type != OpenAPIType.NULL]
        if len(branches) == 1 and len(schemas) == 1:
            _constrain(schemas[0], branches[0])
        return
    if isinstance(field_type, msgspec.inspect.ListType):
        _constrain_items(prop, field_type.item_type)
        if field_type.min_length is not None:
            prop.min_items = field_type.min_length
        if field_type.max_length is not None:
            prop.max_items = field_type.max_length
    elif isinstance(field_type, msgspec.inspect.IntType | msgspec.inspect.FloatType):
        prop.minimum = field_type.ge if field_type.ge is not None else prop.minimum
        prop.maximum = field_type.le if field_type.le is not None else prop.maximum
        prop.exclusive_minimum = field_type.gt if field_type.gt is not None else prop.exclusive_minimum
        prop.exclusive_maximum = field_type.lt if field_type.lt is not None else prop.exclusive_maximum
    elif isinstance(field_type, msgspec.inspect.StrType):
        prop.pattern = field_type.pattern or prop.pattern
        prop.min_length = field_type.min_length if field_type.min_length is not None else prop.min_length
        prop.max_length = field_type.max_length if field_type.max_length is not None else prop.max_length


def _constrain_items(array: Schema, item_type: msgspec.inspect.Type) -> None:
    if not isinstance(array.items, Schema):
        return
    items = array.items
    if isinstance(item_type, msgspec.inspect.Metadata):
        extra = item_type.extra_json_schema or {}
        items.description = extra.get("description", items.description)
        items.examples = extra.get("examples", items.examples)
        item_type = item_type.type
    if isinstance(item_type, msgspec.inspect.StrType):
        items.pattern = item_type.pattern
        items.min_length = item_type.min_length
        items.max_length = item_type.max_length


__all__ = ("DOCS_PATH", "StrictStructSchemaPlugin", "openapi_config")
