"""Markdown tables of a benchmark JSON (bench/results/*.json) for the README.

    python tools/results_table.py bench/results/<host>-<device>.json          # headline
    python tools/results_table.py bench/results/<host>-<device>.json --all    # every row
    python tools/results_table.py bench/results/<host>-<device>.json --readme README.md

Headline: one line per point of each plot panel (ours against the headline peers at each
value of the scaling variable): our median time, the byte floor (the op's least traffic at
the measured ``clone()`` bandwidth) and the fraction of it reached, the speedup against each
peer with a peer's disagreements with the reference (spike flips at threshold ties) when it
had any, and the panel's targets, met or not. ``--all``: every row of ours, with the same
columns against every peer timed beside it. ``--readme FILE``: writes the headline tables,
then every row of ours outside the panels, between FILE's markers ``<!-- bench-table:begin
-->`` and ``<!-- bench-table:end -->`` (the README's benchmark table is this output).
"""

from __future__ import annotations

import argparse
import json

OURS = ("reference", "cpu", "triton", "cuda")


def _is_ours(impl: str) -> bool:
    return impl.split("+")[0] in OURS or impl.startswith("ToCurrent")


def _floor(r) -> str:
    if not r.get("floor_ms"):
        return ""
    return f"{r['floor_ms']:.3g} ms ({100 * r['frac_floor']:.0f} %)"


def _peer(rows_by_impl, peer, ours_row) -> str:
    p = rows_by_impl.get(peer)
    if p is None:
        return ""
    text = f"{p['median_ms'] / ours_row['median_ms']:.2f}x"
    if p.get("mismatches"):
        text += f" ({p['mismatches']} of {p['compared']} differ)"
    return text


def headline(data) -> list[str]:
    lines = [] if data.get("panels") else ["(no plot panels in this file, an older run: "
                                           "see --all)"]
    for panel in data.get("panels", []):
        peers = list(panel["peers"])
        lines += [f"\n**{panel['name']}** (fastsnn `{panel['ours']}`)\n",
                  f"| {panel['scale_name']} | fastsnn ms | byte floor (reached) | "
                  + " | ".join(f"vs {p}" for p in peers) + " | target |",
                  "|---" * (4 + len(peers)) + "|"]
        points = {}
        for r in data["rows"]:
            if r.get("panel") == panel["name"]:
                points.setdefault(r["scale"], {})[r["impl"]] = r
        for scale in sorted(points):
            by_impl = points[scale]
            ours = by_impl.get(panel["ours"])
            if ours is None:
                continue
            verdicts = []
            for peer, want in panel.get("targets", {}).items():
                if peer in by_impl:
                    got = by_impl[peer]["median_ms"] / ours["median_ms"]
                    verdicts.append(f">= {want:g}x {peer}: {'met' if got >= want else 'not met'}")
            if panel.get("floor_targets") and ours.get("frac_floor"):
                ok = 1 / ours["frac_floor"] <= panel["floor_targets"]
                verdicts.append(f"within {panel['floor_targets']:g}x of the floor: "
                                f"{'met' if ok else 'not met'}")
            lines.append(f"| {scale:g} | {ours['median_ms']:.3g} | {_floor(ours)} | "
                         + " | ".join(_peer(by_impl, p, ours) for p in peers)
                         + f" | {'; '.join(verdicts)} |")
    return lines


def every_row(data, outside_panels: bool = False) -> list[str]:
    """Every row of ours (``outside_panels``: only those no plot panel shows)."""
    lines = ["| op | case | dtype | dir | impl | ms | byte floor (reached) | speedup vs peers |",
             "|---|---|---|---|---|---|---|---|"]
    groups = {}
    for r in data["rows"]:
        groups.setdefault((r["op"], r["case"], r["dtype"], r["direction"]), {})[r["impl"]] = r
    for r in data["rows"]:
        if not _is_ours(r["impl"]) or r["impl"] == "reference":
            continue
        if outside_panels and r.get("panel"):
            continue
        group = groups[(r["op"], r["case"], r["dtype"], r["direction"])]
        peers = ", ".join(f"{k} {_peer(group, k, r)}" for k in group if not _is_ours(k))
        lines.append(f"| {r['op']} | {r['case']} | {r['dtype']} | {r['direction']} | "
                     f"{r['impl']} | {r['median_ms']:.3g} | {_floor(r)} | {peers} |")
    return lines


BEGIN, END = "<!-- bench-table:begin -->", "<!-- bench-table:end -->"


def title(data) -> str:
    return (f"{data['device']}, torch {data['torch']}, {data['threads']} threads, "
            f"{data['date']}{' (quick)' if data.get('quick') else ''}; copy bandwidth "
            f"{data['copy_bandwidth_GBps']:.1f} GB/s")


def readme_text(data, source: str, readme: str, text: str) -> str:
    """``text`` (the file ``readme``) with this run's tables between its markers."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"{readme}: needs one '{BEGIN}' line and, after it, one '{END}'")
    body = [f"Generated by `python tools/results_table.py {source} --readme {readme}` from "
            f"the run below ({title(data)}).", *headline(data), "",
            "**Rows outside the panels**\n", *every_row(data, outside_panels=True)]
    head, rest = text.split(BEGIN)
    return head + BEGIN + "\n" + "\n".join(body) + "\n" + END + rest.split(END)[1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--all", action="store_true", help="every row of ours")
    parser.add_argument("--readme", help="rewrite this file's table between its markers")
    args = parser.parse_args(argv)
    with open(args.path) as f:
        data = json.load(f)
    if args.readme:
        with open(args.readme) as f:
            text = readme_text(data, args.path, args.readme, f.read())
        with open(args.readme, "w") as f:
            f.write(text)
        return
    print(title(data))
    print("\n".join(every_row(data) if args.all else headline(data)))


if __name__ == "__main__":
    main()
