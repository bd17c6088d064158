"""One self-contained HTML report: figures inlined as base64 PNG, tables as HTML, no external
resources (it opens offline, and can be mailed as one file)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

from cortexfm.atomic import write_text_atomic

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
td, th { border: 1px solid #ddd; padding: 3px 7px; text-align: right; }
th { background: #f4f4f4; } figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; } pre { background: #f7f7f7; padding: 0.8em; font-size: 0.8em; overflow-x: auto; }
.note { color: #555; font-size: 0.9em; } .missing { color: #a00; }
"""


#: Marks on <body> how many figures loaded (read by the headless-browser test).
CHECK_SCRIPT = (
    "<script>window.addEventListener('load', () => {"
    "const images = Array.from(document.images);"
    "document.body.setAttribute('data-images', images.length);"
    "document.body.setAttribute('data-images-loaded',"
    " images.filter(i => i.complete && i.naturalWidth > 0).length);});</script>"
)


def figure(path: str | Path, caption: str) -> str:
    path = Path(path)
    if not path.exists():
        return f'<p class="missing">figure not produced: {html.escape(path.name)}</p>'
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def table(frame: pd.DataFrame, digits: int = 3) -> str:
    return frame.to_html(
        index=False, float_format=lambda x: f"{x:.{digits}f}", border=0, na_rep="–"
    )


def preformatted(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
    return f"<pre>{html.escape(text)}</pre>"


def paragraph(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def write_report(path: str | Path, title: str, sections: list[tuple[str, list[str]]]) -> Path:
    """Write ``sections`` (title, HTML blocks) to ``path`` atomically."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    body.append(
        "<nav><ul>"
        + "".join(
            f'<li><a href="#s{i}">{html.escape(name)}</a></li>'
            for i, (name, _) in enumerate(sections)
        )
        + "</ul></nav>"
    )
    for i, (name, blocks) in enumerate(sections):
        body.append(f'<h2 id="s{i}">{html.escape(name)}</h2>')
        body.extend(blocks)
    document = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>{CHECK_SCRIPT}</head><body>"
        + "\n".join(body)
        + "</body></html>"
    )
    return write_text_atomic(path, document)
