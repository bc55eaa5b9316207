"""The OpenAPI document and the pages that render it: Swagger UI served from the package's own
files, and struct schemas that say everything msgspec enforces."""

from __future__ import annotations

from inspect import cleandoc
from typing import TYPE_CHECKING

import msgspec
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, Schema

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
            if isinstance(prop, Schema) and isinstance(field.type, msgspec.inspect.ListType):
                _constrain_items(prop, field.type.item_type)
        return schema


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
