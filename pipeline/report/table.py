"""The FVD table (results/fvd_table.csv) and the pairwise comparisons as one HTML page.

Snakemake's report shows an HTML result in a frame but offers a CSV only as a download, so the
page renders both CSVs as tables, says which weights produced the numbers, and carries the CSVs
themselves as download links (data URIs: the page is self-contained, as the report is).

    python -m pipeline.report.table --table results/fvd_table.csv \\
        --comparisons results/fvd_comparisons.csv --provenance results/fvd/scores/*.json \\
        --output results/report/fvd_table.html
"""

from __future__ import annotations

import argparse
import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline.cli import run_main
from pipeline.io import atomic_path
from pipeline.report.figures import provenance_html, read_csv_rows, report_record
from pipeline.report.fvd_chart import TABLE_COLUMNS
from pipeline.report.provenance import load_record, notes_line, weight_notes

__all__ = ["html_table", "table_page", "main"]

STYLE = """
body { font-family: sans-serif; font-size: 13px; margin: 12px; }
table { border-collapse: collapse; margin-bottom: 18px; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #eee; position: sticky; top: 0; }
td.text { text-align: left; }
p.notes { color: #a33; font-weight: bold; }
"""
# Columns whose cells are text (left-aligned); the rest are numbers.
TEXT_COLUMNS = {"variant", "network", "norm", "perceptual", "prior", "i3d", "weights", "pair", "variant_a",
                "variant_b", "change", "same_sign_as_thesis"}


def html_table(rows: Sequence[Mapping[str, str]]) -> str:
    """An HTML table of CSV rows (the first row's keys as the header)."""
    if not rows:
        return "<p>(no rows)</p>"
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"text" if column in TEXT_COLUMNS else "number"}">'
                         f"{html.escape(row.get(column) or '')}</td>" for column in columns) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _download(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<a download="{html.escape(path.name)}" href="data:text/csv;base64,{data}">{html.escape(path.name)}</a>'


def table_page(table: str | Path, comparisons: str | Path | None, notes: str, record: dict) -> str:
    """The page: the weights line, the FVD table, the comparisons, and both CSVs to download;
    its provenance ``record`` in an inert JSON element."""
    table = Path(table)
    parts = [f"<h2>FVD per variant (thesis table 5.1 re-run)</h2><p class='notes'>{html.escape(notes)}</p>",
             "<p>fvd: the thesis's protocol (an FVD per batch of batch_size videos, mean over batches and "
             "crops); fvd_pooled: all videos at once, with its bootstrap interval; FVDs compare only when "
             "videos, batch_size and frames are equal (the thesis: 128 videos of 16 frames in batches of 16); "
             "thesis_fvd: the thesis's figure; weights: what behind the row was random or trained here. Download: "
             f"{_download(table)}" + (f", {_download(Path(comparisons))}" if comparisons else "") + "</p>",
             html_table(read_csv_rows(table, TABLE_COLUMNS, "FVD table"))]
    if comparisons:
        parts += ["<h3>Pairwise comparisons (thesis 5.2)</h3><p>change = b - a. The pooled change's interval "
                  "and sign_kept_share_over_test_videos (the share of bootstrap resamples in which it keeps "
                  "its sign) resample the test_videos test videos only: each variant was trained once, as in "
                  "the thesis, so they do not cover what retraining (another seed) would change. "
                  "same_sign_as_thesis: whether the pooled change goes the thesis's way; undetermined where "
                  "its interval holds 0. same_sign_as_thesis_protocol: the same for the change by the thesis's "
                  "protocol (batches of 16, as the thesis measured), with a t interval over its paired batches "
                  "(fvd_change_ci_low/high).</p>",
                  html_table(read_csv_rows(comparisons))]
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>FVD table</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}{provenance_html(record)}</body></html>\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.report.table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="results/fvd_table.csv")
    parser.add_argument("--comparisons", help="results/fvd_comparisons.csv")
    parser.add_argument("--provenance", nargs="*", default=[], help="files whose provenance names the weights")
    parser.add_argument("--output", required=True, help="HTML page to write")
    args = parser.parse_args(argv)
    notes = notes_line(weight_notes(load_record(path) for path in args.provenance))
    page = table_page(args.table, args.comparisons, notes, report_record("pipeline.report.table", args))
    with atomic_path(args.output, suffix=".html") as tmp:
        tmp.write_text(page, encoding="utf-8")


if __name__ == "__main__":
    run_main(main)
