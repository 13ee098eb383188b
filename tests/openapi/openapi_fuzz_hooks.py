"""Schemathesis hooks of tests/e2e/openapi_fuzz_test.go (SCHEMATHESIS_HOOKS).

The document states every rule of a request that JSON Schema (OpenAPI 3.0)
can state. A few rules it cannot: values that only the server or the
deployment makes, and rules that relate one value to another. For cases
generated as valid (positive), this hook replaces just those values with
ones that are valid on the test stack, so that a valid case is really
valid; cases generated as invalid (negative) are sent as generated.
Everything else comes from the document as it is.
"""

import re

import schemathesis
from schemathesis.core.parameters import ParameterLocation

# The search syntax (docs/api.md "Search"): at least one word to find (a
# letter or digit of any script, in a term that is not -excluded), at most
# 32 terms, no word over 200 characters.
_SEARCH_FINDS = re.compile(r"(^|\s)[^-\s]*[^\W_]", re.UNICODE)
_SEARCH_WORDS = re.compile(r"[^\W_]+", re.UNICODE)


def _searchable(q):
    words = _SEARCH_WORDS.findall(q)
    return bool(_SEARCH_FINDS.search(q)) and len(words) <= 32 and all(len(w) <= 200 for w in words)


def _positive(case, location):
    return case.meta is None or not case.meta.is_negative_at(location)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    path = case.operation.path
    if isinstance(case.query, dict) and _positive(case, ParameterLocation.QUERY):
        # page_token: a signed cursor that the server made; any other is 400.
        # The fuzzer asks for the first page.
        case.query.pop("page_token", None)
        # update_mask names the fields of the update's body; a field it
        # names must then be in the body with a valid value.
        case.query.pop("update_mask", None)
        # q of a search: the search syntax, which JSON Schema cannot say.
        q = case.query.get("q")
        if path == "/v1/search" and isinstance(q, str) and not _searchable(q):
            case.query["q"] = "word"
    body = case.body
    if _positive(case, ParameterLocation.BODY):
        if isinstance(body, dict):
            # model: one the deployment configures (PROVIDER_MODELS); "" is
            # the default.
            if isinstance(body.get("model"), str):
                body["model"] = ""
            # metadata keys: 1..64 characters without NUL, which OpenAPI 3.0
            # cannot say (propertyNames is OpenAPI 3.1's JSON Schema).
            metadata = body.get("metadata")
            if isinstance(metadata, dict):
                body["metadata"] = {
                    k: v for k, v in metadata.items() if 1 <= len(k) <= 64 and "\x00" not in k
                }
        # POST /v1/import of a ChatGPT file: the mapping is a tree whose
        # parent, children and current_node name its own keys. The fuzzer
        # sends conversations without messages.
        if path == "/v1/import" and isinstance(body, list):
            for item in body:
                if isinstance(item, dict):
                    if isinstance(item.get("mapping"), dict):
                        item["mapping"] = {}
                    item.pop("current_node", None)
