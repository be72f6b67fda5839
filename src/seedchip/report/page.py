"""One self-contained HTML page: a header with the inputs, the provenance and the key
numbers, then sections of Plotly figures and tables. Plotly's JavaScript is inlined once
(from plotly's own offline bundle), so the page makes no network request and reads the
same with the network off. The same content gives byte-identical HTML: no timestamps,
figure ids numbered in order, keys in a fixed order."""

from __future__ import annotations

import html
import json
import math

from ..units import fmt
from ..version import __version__

PALETTE = ["#1f5fa8", "#d9682b", "#2f9e5b", "#b8354a", "#7a55b3", "#8c6d1f", "#2a9fb0", "#c2549d", "#5f6b73"]
FIG_CONFIG = {"displaylogo": False, "responsive": True,
              "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}


def plotly():
    """plotly.graph_objects, or a one-line error naming the package to install."""
    try:
        import plotly.graph_objects as go
    except ImportError:  # pragma: no cover - a core dependency
        from ..errors import SpecError
        raise SpecError("the HTML report needs Plotly: pip install plotly (or reinstall seedchip)") from None
    return go


def _usd(value: float) -> str:
    a = abs(value)
    for f, s in ((1e9, " B"), (1e6, " M"), (1e3, " k")):
        if a >= f:
            return f"${value / f:,.3g}{s}"
    return f"${value:,.0f}" if a >= 10 else f"${value:.3g}"


FORMATTERS = {"usd": _usd, "pct": lambda v: f"{v * 100:.1f}%", "x": lambda v: f"{v:.3g}x",
              "int": lambda v: f"{int(round(v)):,}", "req/s": lambda v: f"{v:.3g} req/s",
              "tok/s": lambda v: f"{v:,.0f} tok/s" if abs(v) >= 100 else f"{v:.3g} tok/s"}


def show(value, dim: str = "") -> str:
    """A number as the page prints it; ``dim``: a unit for :func:`seedchip.units.fmt` (s, bytes,
    bytes/s, flop/s, w, j), or usd, pct (a fraction shown in %), x (a ratio), int, or '' (3 digits)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if dim in FORMATTERS:
        return FORMATTERS[dim](value)
    if dim:
        return fmt(value, dim)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def compact(x):
    """Floats to 6 significant digits, recursively (numpy arrays as lists): smaller pages, same plots."""
    if isinstance(x, float):
        return float(f"{x:.6g}") if math.isfinite(x) else x
    if isinstance(x, dict):
        return {k: compact(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [compact(v) for v in x]
    if hasattr(x, "tolist"):
        return compact(x.tolist())
    return x


def _template_js() -> str:
    """The page's one Plotly template and config, and ``draw(id, data, layout)``."""
    import plotly.io as pio
    from plotly.io.json import to_json_plotly
    t = pio.templates["plotly_white"].to_plotly_json()
    # the figures are drawn one per task after the first paint (the page shows its numbers at once),
    # all at once before printing; body[data-drawn] says when every one is drawn
    return (f"const SC_TEMPLATE={to_json_plotly(t)};const SC_CONFIG={json.dumps(FIG_CONFIG, sort_keys=True)};"
            "const SC_QUEUE=[];function draw(id,data,layout){SC_QUEUE.push([id,data,layout]);}"
            "function drawNext(){const f=SC_QUEUE.shift();if(!f){document.body.dataset.drawn='all';return false;}"
            "f[2].template=SC_TEMPLATE;Plotly.newPlot(f[0],f[1],f[2],SC_CONFIG);return true;}"
            "function drawLater(){if(drawNext())setTimeout(drawLater,0);}"
            "window.addEventListener('beforeprint',()=>{while(drawNext());});"
            "requestAnimationFrame(()=>setTimeout(drawLater,0));")


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def _plain(v) -> str:
    """A JSON leaf as inputs/provenance tables print it."""
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    if isinstance(v, float):
        return f"{v:.6g}"
    return "—" if v is None else str(v)


class Page:
    """Build a report page top to bottom, then :meth:`html`."""

    def __init__(self, kind: str, title: str, subtitle: str = ""):
        self.kind, self.title, self.subtitle = kind, title, subtitle
        self.kpis: list[str] = []
        self.head: list[str] = []
        self.body: list[str] = []
        self.num_figures = 0
        self.scripts: list[str] = []
        self.num_tables = 0

    # ---- the top of the page -------------------------------------------------------------
    def kpi(self, label: str, value, dim: str = "", key: str = "", sub: str = "") -> None:
        """A key number. ``key`` is the value's path in the source JSON (dots), kept in
        ``data-key`` with the exact value in ``data-value`` so the page can be checked against it."""
        raw = "" if value is None else (repr(float(value)) if isinstance(value, (int, float))
                                        and not isinstance(value, bool) else str(value))
        self.kpis.append(f'<div class="kpi" data-key="{esc(key)}" data-value="{esc(raw)}" data-dim="{esc(dim)}">'
                         f'<div class="kpi-label">{esc(label)}</div><div class="kpi-value">{esc(show(value, dim))}'
                         f'</div>{f"<div class=kpi-sub>{esc(sub)}</div>" if sub else ""}</div>')

    def facts(self, title: str, items: dict, cls: str = "facts") -> None:
        """A small two-column table at the top (inputs, provenance)."""
        items = {k: v for k, v in items.items() if v is not None and v != [] and v != {}}
        if not items:
            return
        rows = "".join(f'<div class="fact"><span class="k">{esc(str(k).replace("_", " "))}</span> '
                       f'<span class="v">{esc(_plain(v))}</span></div>' for k, v in items.items())
        self.head.append(f'<div class="{cls}"><h3>{esc(title)}</h3><div class="grid">{rows}</div></div>')

    # ---- the sections --------------------------------------------------------------------
    def section(self, title: str, note: str = "") -> None:
        self.body.append(f"<h2>{esc(title)}</h2>" + (f'<p class="note">{esc(note)}</p>' if note else ""))

    def note(self, text: str, cls: str = "note") -> None:
        self.body.append(f'<p class="{cls}">{esc(text)}</p>')

    def figure(self, fig, caption: str = "", height: int = 380) -> None:
        """A Plotly figure, drawn as SVG (no WebGL: it prints and renders without a GPU). The
        figure carries its data and layout only; the page's one template styles them all."""
        from plotly.io.json import to_json_plotly
        self.num_figures += 1
        fid = f"fig-{self.num_figures}"
        m = fig.layout.margin
        fig.update_layout(height=height, colorway=PALETTE,
                          margin={k: getattr(m, k) if getattr(m, k) is not None else v
                                  for k, v in dict(l=64, r=24, t=44, b=52).items()},
                          font=dict(family="Helvetica, Arial, sans-serif", size=12),
                          legend=dict(orientation="h", yanchor="bottom", y=1.04, x=0))
        spec = fig.to_plotly_json()
        layout = dict(spec["layout"])
        layout.pop("template", None)
        data = to_json_plotly(compact(spec["data"]))
        cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
        self.body.append(f'<figure class="fig"><div id="{fid}" class="plot" style="height:{height}px"></div>{cap}'
                         "</figure>")
        self.scripts.append(f'draw("{fid}",{data},{to_json_plotly(compact(layout))});')

    def table(self, headers: list[str], rows: list[list], caption: str = "", numeric: set[int] | None = None) -> None:
        """A table; columns in ``numeric`` (by index; default: all but the first) align right."""
        self.num_tables += 1
        numeric = set(range(1, len(headers))) if numeric is None else numeric
        al = lambda i: ' class="num"' if i in numeric else ""
        head = "".join(f"<th{al(i)}>{esc(h)}</th>" for i, h in enumerate(headers))
        body = "".join("<tr>" + "".join(f"<td{al(i)}>{esc(c)}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
        cap = f"<caption>{esc(caption)}</caption>" if caption else ""
        self.body.append(f'<div class="tablewrap"><table class="data" id="table-{self.num_tables}">{cap}<thead><tr>'
                         f"{head}</tr></thead><tbody>{body}</tbody></table></div>")

    def notes(self, notes: list[str] | None) -> None:
        if notes:
            self.section("Notes")
            self.body.append("<ul class=notes>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")

    # ---- the page ------------------------------------------------------------------------
    def html(self) -> str:
        from plotly.offline import get_plotlyjs
        from .style import CSS
        kpis = f'<div class="kpis">{"".join(self.kpis)}</div>' if self.kpis else ""
        head = f'<div class="top">{"".join(self.head)}</div>' if self.head else ""
        sub = f'<p class="subtitle">{esc(self.subtitle)}</p>' if self.subtitle else ""
        draw = f"<script>{_template_js()}\n{chr(10).join(self.scripts)}</script>" if self.scripts else ""
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<meta name=\"generator\" content=\"seedchip {esc(__version__)}\">"
                f"<title>{esc(self.title)}</title><style>{CSS}</style></head>\n"
                f'<body data-kind="{esc(self.kind)}"><header><div class="brand">SeedChip report · {esc(self.kind)}'
                f'</div><h1>{esc(self.title)}</h1>{sub}</header><main>{kpis}{head}{"".join(self.body)}</main>'
                f"<footer>seedchip {esc(__version__)} · self-contained page (Plotly inlined, no network) · "
                f"hover a plot for values, drag to zoom, double-click to reset</footer>\n"
                f"<script>{get_plotlyjs()}</script>\n{draw}</body></html>\n")


__all__ = ["Page", "show", "plotly", "PALETTE", "esc"]
