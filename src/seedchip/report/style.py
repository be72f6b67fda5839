"""The report page's stylesheet: plain, readable on screen and on paper (A4 or Letter)."""

CSS = """
:root { --ink: #1d2731; --muted: #5f6b76; --line: #dde3e8; --accent: #1f5fa8; --bg: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
header { background: var(--ink); color: #fff; padding: 18px 32px 14px; }
header h1 { margin: 2px 0 0; font-size: 22px; font-weight: 600; }
.brand { font-size: 12px; letter-spacing: .08em; text-transform: uppercase; color: #a9c4e4; }
.subtitle { margin: 4px 0 0; color: #cfd8e0; }
main { max-width: 1200px; margin: 0 auto; padding: 16px 32px 32px; }
h2 { font-size: 17px; margin: 28px 0 6px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 13px; margin: 0 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .05em; }
.kpis { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; margin: 6px 0 14px; }
.kpi { background: var(--bg); border: 1px solid var(--line); border-left: 4px solid var(--accent);
       border-radius: 4px; padding: 8px 12px; }
.kpi-label { font-size: 12px; color: var(--muted); }
.kpi-value { font-size: 20px; font-weight: 600; font-variant-numeric: tabular-nums; }
.kpi-sub { font-size: 11px; color: var(--muted); }
.top { display: grid; gap: 10px; }
.facts { background: var(--bg); border: 1px solid var(--line); border-radius: 4px; padding: 10px 12px; }
.facts .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 1px 18px;
               font-size: 12px; }
.fact .k { color: var(--muted); }
.fact .v { font-family: ui-monospace, Menlo, Consolas, monospace; word-break: break-word; }
.top { grid-template-columns: 1fr; }
.tablewrap { overflow-x: auto; }
figure.fig { margin: 8px 0 16px; break-inside: avoid; page-break-inside: avoid; }
figcaption { font-size: 12px; color: var(--muted); margin-top: 2px; }
table.data { border-collapse: collapse; width: 100%; margin: 8px 0 16px; font-size: 12.5px;
             break-inside: auto; }
table.data caption { text-align: left; font-size: 12px; color: var(--muted); padding-bottom: 4px; }
table.data th { background: var(--bg); text-align: left; border-bottom: 1px solid var(--line); padding: 5px 8px; }
table.data td { border-bottom: 1px solid var(--line); padding: 4px 8px; }
table.data tr { break-inside: avoid; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.note { color: var(--muted); font-size: 12.5px; margin: 2px 0 8px; }
.warn { color: #8a4b00; background: #fff4e0; border: 1px solid #f0d3a0; padding: 6px 10px; border-radius: 4px; }
ul.notes { font-size: 12.5px; color: var(--muted); }
footer { color: var(--muted); font-size: 11px; text-align: center; padding: 12px; border-top: 1px solid var(--line); }
@media print {
  header { background: #fff; color: var(--ink); border-bottom: 2px solid var(--ink); padding: 0 0 8px; }
  .brand, .subtitle { color: var(--muted); }
  main { max-width: none; padding: 0; }
  .modebar-container { display: none !important; }
  h2 { break-after: avoid; page-break-after: avoid; }
  footer { display: none; }
  .tablewrap { overflow: visible; }
  table.data { font-size: 10px; }
}
"""
