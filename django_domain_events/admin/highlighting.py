"""JSON as escaped, syntax-highlighted HTML, made on the server: no script, nothing fetched."""

from __future__ import annotations

import json
import re
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# json.dumps output only: strings (with escapes), numbers, literals, punctuation, whitespace.
_TOKEN = re.compile(
    r'(?P<string>"(?:[^"\\]|\\.)*")(?P<colon>\s*:)?'
    r"|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
    r"|(?P<literal>true|false|null)"
    r"|(?P<other>[^\"\d\-tfn]+|.)",
    re.DOTALL,
)


def highlight_json(value: Any) -> SafeString:
    """``value`` as indented JSON in a ``<pre>``, every token escaped and wrapped in a span
    whose class says what it is (``json-key``, ``json-string``, ``json-number``,
    ``json-literal``)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    parts: list[str] = []
    for match in _TOKEN.finditer(text):
        if match["string"] is not None:
            kind = "json-key" if match["colon"] else "json-string"
            parts.append(f'<span class="{kind}">{escape(match["string"])}</span>')
            if match["colon"]:
                parts.append(escape(match["colon"]))
        elif match["number"] is not None:
            parts.append(f'<span class="json-number">{match["number"]}</span>')
        elif match["literal"] is not None:
            parts.append(f'<span class="json-literal">{match["literal"]}</span>')
        else:
            parts.append(escape(match.group()))
    # Every piece of the text went through escape() or is a fixed token the pattern matched.
    return mark_safe('<pre class="dde-json">' + "".join(parts) + "</pre>")
