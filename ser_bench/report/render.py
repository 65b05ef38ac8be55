"""Tables built once, written three ways: Markdown (printed too), self-contained HTML, CSV."""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from dataclasses import dataclass, field

from ser_bench.report.ensemble import Ensemble
from ser_bench.report.links import runs_url
from ser_bench.report.stats import METRICS, SUMMARISED, Group


@dataclass
class Table:
    title: str
    note: str
    headers: list[str]
    rows: list[list[str]]
    figures: list[tuple[str, bytes]] = field(default_factory=list)  # (caption, PNG)
    links: dict[int, str] = field(default_factory=dict)  # row index -> its runs in MLflow's UI (ser_bench.report.links)
    link_column: int = 1  # the cell that carries the link (the setting's label)


def num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def mean_std(mean: float, std: float) -> str:
    return f"{num(mean)} ± {num(std)}" if not math.isnan(std) else num(mean)


def pm(g: Group, metric: str) -> str:
    return mean_std(*g.summary(metric)[:2])


def ci(g: Group) -> str:
    _, _, lo, hi = g.summary("test/ua")
    return f"[{num(lo)}, {num(hi)}]" if not math.isnan(lo) else "–"


def pvalues(g: Group) -> str:
    if g.rank == 1:
        return "leader"
    if g.p_ttest is None:
        return "–"
    return f"{g.p_ttest:.3f} / {g.p_wilcoxon:.3f}"


def markdown(title: str, preamble: list[str], tables: list[Table]) -> str:
    out = [f"# {title}", "", *preamble, ""]
    for t in tables:
        out += [f"## {t.title}", "", t.note, "", "| " + " | ".join(t.headers) + " |",
                "|" + "---|" * len(t.headers)]
        out += ["| " + " | ".join(row) + " |" for row in t.rows]  # links only in HTML and CSV: printed, noise
        out.append("")
    return "\n".join(out)


def to_html(title: str, preamble: list[str], tables: list[Table]) -> str:
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p>{html.escape(p)}</p>" for p in preamble]
    for t in tables:
        parts.append(f"<h2>{html.escape(t.title)}</h2><p class='note'>{html.escape(t.note)}</p>")
        parts.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in t.headers)
                     + "</tr></thead><tbody>")
        for i, row in enumerate(t.rows):
            kind = "ref" if row and row[0] in ("ref", "base") else "inc" if row and row[0] == "incomplete" else ""
            parts.append(f"<tr class='{kind}'>" + "".join(
                f"<td>{_html_cell(c, t.links.get(i) if j == t.link_column else None)}</td>"
                for j, c in enumerate(row)) + "</tr>")
        parts.append("</tbody></table>")
        for caption, png in t.figures:
            data = base64.b64encode(png).decode()
            parts.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_cell(text: str, url: str | None) -> str:
    escaped = html.escape(text)
    return f"<a href='{html.escape(url)}' title='its runs in MLflow'>{escaped}</a>" if url else escaped


def to_csv(groups: list[Group], ensembles: list[Ensemble] = (), ui: str | None = None) -> str:
    """One row per setting; a setting with a seed ensemble also gets the ensemble's figures (settings
    ensembles, which span several rows, are in the Markdown and HTML only)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    stats = [f"{m}_{s}" for m in SUMMARISED for s in ("mean", "std", "ci_low", "ci_high")]
    ensemble_stats = [f"ensemble_{m}_{s}" for m in METRICS for s in ("mean", "std")] + ["ensemble_val/ua_mean"]
    writer.writerow(["corpus", "split", "model", "augment", "settings", "complete", "leaky", "transductive", "rank",
                     "folds", "seeds", "runs", *stats, "p_ttest_vs_leader", "p_wilcoxon_vs_leader", "minutes_per_run",
                     "params", "ensemble_seeds", *ensemble_stats, "run_ids", "mlflow_url"])
    by_group = {id(e.groups[0]): e for e in ensembles if len(e.groups) == 1}  # seed ensembles
    for g in groups:
        values = [num(v, 4) for m in SUMMARISED for v in g.summary(m)]
        e = by_group.get(id(g))
        ensemble = [" ".join(e.seeds[0]), *(num(v, 4) for m in METRICS for v in e.summary(m)),
                    num(e.ensemble_val_ua, 4) if e.ensemble_val_ua is not None else ""] if e else \
            [""] * (1 + len(ensemble_stats))
        writer.writerow([g.corpus, g.split, g.model, g.augment, " ".join(f"{k}={v}" for k, v in g.settings.items()),
                         g.complete, g.leaky, g.transductive, g.rank or "", " ".join(map(str, g.folds)),
                         " ".join(g.seeds), len(g.records), *values, num(g.p_ttest, 4) if g.p_ttest is not None else "",
                         num(g.p_wilcoxon, 4) if g.p_wilcoxon is not None else "", num(g.minutes, 2),
                         g.params or "", *ensemble, " ".join(r.run_id for r in g.records),
                         runs_url(ui, g.records) if ui else ""])
    return buf.getvalue()


def png(fig) -> bytes:
    from ser_bench.plots import close

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    close(fig)
    return buf.getvalue()


CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;color:#222;
padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:.3rem .5rem;border-bottom:1px solid #eee;text-align:left}
th{background:#f5f6f8}tr.ref td{color:#2a6f3a;font-style:italic}tr.inc td{color:#888}
.note{color:#555}figure{margin:1.2rem 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#666;font-size:12px}
"""
