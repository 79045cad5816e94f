"""The report's HTML: one Jinja2 template with inline CSS, rendered with autoescape on, so
every name that comes from data (campaigns, situations, strategies, frames) is escaped.
No scripts, no external fonts, styles or images: the file works offline and by e-mail."""

from __future__ import annotations

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup, escape

CSS = """
:root { --fg: #1f2937; --muted: #6b7280; --line: #e5e7eb; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: #f8fafc; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; background: #fff;
       min-height: 100vh; box-shadow: 0 0 0 1px var(--line); }
header h1 { margin: 0 0 4px; font-size: 26px; }
.meta { color: var(--muted); margin: 0 0 12px; }
.meta b { color: var(--fg); font-weight: 600; }
.verdict { background: #eff6ff; border-left: 4px solid var(--accent); padding: 10px 14px;
           margin: 8px 0 12px; max-width: 980px; font-size: 15.5px; }
.warn { background: #fef3c7; border: 1px solid #f59e0b; padding: 8px 12px; border-radius: 6px; }
nav ol { margin: 8px 0 0; padding-left: 22px; }
nav li { margin: 2px 0; }
nav a { color: var(--accent); text-decoration: none; font-weight: 600; }
nav span { color: var(--muted); }
section { border-top: 2px solid var(--line); margin-top: 28px; padding-top: 8px; }
h2 { font-size: 21px; margin: 8px 0 2px; }
h3 { font-size: 16px; margin: 18px 0 4px; }
p.intro { color: var(--muted); margin: 0 0 10px; max-width: 900px; }
p.empty { background: #f1f5f9; border-left: 4px solid #94a3b8; padding: 10px 14px;
          margin: 8px 0; max-width: 900px; }
p.note { color: var(--muted); font-size: 13px; max-width: 900px; }
code { background: #e2e8f0; padding: 0 3px; border-radius: 3px; font-size: 13px; }
figure { margin: 10px 0 18px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; max-width: 900px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 13.5px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
th { background: #f1f5f9; font-weight: 600; }
th { white-space: normal; max-width: 230px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
tr.dim td { color: var(--muted); }
.caption { color: var(--muted); font-size: 12.5px; max-width: 900px; margin: 2px 0 14px; }
.legend span { display: inline-block; margin-right: 14px; font-size: 13px; }
.swatch { display: inline-block; width: 14px; height: 10px; margin-right: 4px;
          vertical-align: middle; border: 2px solid; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr));
        gap: 12px; margin: 6px 0 12px; }
.card { border: 1px solid var(--line); border-radius: 6px; overflow: hidden; background: #fff; }
.card img { display: block; width: 100%; height: auto; }
.card .body { padding: 6px 8px; font-size: 12.5px; }
.card .name { font-family: ui-monospace, Menlo, monospace; font-size: 11.5px;
              word-break: break-all; }
.tag { display: inline-block; background: #e0e7ff; color: #3730a3; border-radius: 9px;
       padding: 0 7px; margin: 2px 3px 0 0; font-size: 11.5px; }
.tag.pred { background: #fef3c7; color: #92400e; }
.badge { float: right; background: #fee2e2; color: #991b1b; border-radius: 4px;
         padding: 0 5px; font-size: 11px; }
footer { color: var(--muted); font-size: 12px; margin-top: 40px; }
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>{{ css | safe }}</style>
</head>
<body>
<main>
<header>
  <h1>{{ title }}</h1>
  <p class="meta">
    {% for key, value in meta %}<b>{{ key }}</b> {{ value }}{% if not loop.last %} &middot; {% endif %}{% endfor %}
  </p>
  {% if verdict %}<p class="verdict"><b>Verdict.</b> {{ verdict | code }}</p>{% endif %}
  {% for w in warnings %}<p class="warn">{{ w | code }}</p>{% endfor %}
  <nav><ol>
    {% for s in sections %}<li><a href="#{{ s.id }}">{{ s.title }}</a>
      <span>&mdash; {{ s.intro | code }}</span></li>
    {% endfor %}
  </ol></nav>
</header>
{% for s in sections %}
<section id="{{ s.id }}">
  <h2>{{ loop.index }}. {{ s.title }}</h2>
  <p class="intro">{{ s.intro | code }}</p>
  {% for b in s.blocks %}
    {% if b.kind == "figure" %}
      <figure><img src="{{ b.src }}" alt="{{ b.title }}" width="{{ b.width }}">
        {% if b.caption %}<figcaption>{{ b.caption | code }}</figcaption>{% endif %}</figure>
    {% elif b.kind == "table" %}
      {% if b.title %}<h3>{{ b.title }}</h3>{% endif %}
      <div class="scroll"><table>
        <thead><tr>{% for c in b.table.columns %}<th{% if loop.index0 in b.table.numeric %} class="num"{% endif %}>{{ c }}</th>{% endfor %}</tr></thead>
        <tbody>{% for row in b.table.rows %}<tr{% if b.dim and row[0] in b.dim %} class="dim"{% endif %}>{% for cell in row %}<td{% if loop.index0 in b.table.numeric %} class="num"{% endif %}>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</tbody>
      </table></div>
      {% if b.table.caption %}<p class="caption">{{ b.table.caption | code }}</p>{% endif %}
    {% elif b.kind == "note" %}
      <p class="note">{{ b.caption | code }}</p>
    {% elif b.kind == "gallery" %}
      {% set g = b.gallery %}
      <p>Campaign <b>{{ g.campaign }}</b>: {{ g.detail }}.</p>
      <p class="legend"><span><i class="swatch" style="border-color: rgb(34,197,94)"></i>truth boxes</span>
        <span><i class="swatch" style="border-color: rgb(249,115,22)"></i>the round model's predictions (when stored)</span>
        <span class="tag">situation from labels</span> <span class="tag pred">situation from the tagger</span></p>
      {% if g.note %}<p class="note">{{ g.note | code }}</p>{% endif %}
      {% for r in g.rounds %}
        <h3>{{ r.title }}</h3>
        <p class="note">{{ r.detail | code }}</p>
        {% if r.thumbs %}<div class="grid">
        {% for t in r.thumbs %}
          <div class="card"><img src="{{ t.src }}" alt="{{ t.name }}">
            <div class="body">{% if t.badge %}<span class="badge">{{ t.badge }}</span>{% endif %}
              <div class="name">{{ t.name }}</div><div>{{ t.caption }}</div>
              <div>{% for tag in t.tags %}<span class="tag{% if t.tags_from == 'tagger' %} pred{% endif %}">{{ tag }}</span>{% else %}<span class="note">no situation tags</span>{% endfor %}</div>
            </div></div>
        {% endfor %}
        </div>{% endif %}
      {% endfor %}
      {% if g.cams or g.cam_note %}
        <h3>Where the tagger looks (class activation maps)</h3>
        {% if g.cam_note %}<p class="note">{{ g.cam_note | code }}</p>{% endif %}
        <div class="grid">{% for t in g.cams %}
          <div class="card"><img src="{{ t.src }}" alt="{{ t.name }}">
            <div class="body"><div class="name">{{ t.name }}</div><div>{{ t.caption }}</div></div></div>
        {% endfor %}</div>
      {% endif %}
    {% endif %}
  {% endfor %}
  {% for e in s.empty %}<p class="empty">{{ e | code }}</p>{% endfor %}
</section>
{% endfor %}
<footer>Generated by scenesift {{ version }} on {{ generated }}. Self-contained: figures and
thumbnails are embedded, nothing is fetched from the network.</footer>
</main>
</body>
</html>
"""  # noqa: E501 (markup lines; the template is clearer unwrapped)


def code(text: object) -> Markup:
    """Escape ``text`` and set its `backquoted` parts (commands, names) in <code>."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an odd number of backquotes: not markup, leave them
        return escape(text)
    return Markup("").join(
        Markup("<code>{}</code>").format(p) if i % 2 else escape(p) for i, p in enumerate(parts)
    )


def render(**context) -> str:
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True)  # fmt: skip
    env.filters["code"] = code
    return env.from_string(TEMPLATE).render(css=CSS, **context)
