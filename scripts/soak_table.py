#!/usr/bin/python3
"""The fault soak's summary (test/fault/soak --json FILE) as the Markdown
table of docs/RELIABILITY.md: one row per fault, over every episode that had
it (a fault that overlapped another counts in both rows).

    scripts/soak_table.py soak-summary.json
"""
import json
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        summary = json.load(f)
    rows = {}
    order = []
    for episode in summary["episodes"]:
        overlapped = len(episode["faults"]) > 1
        for fault in episode["faults"]:
            name = fault["fault"]
            if name not in rows:
                order.append(name)
                rows[name] = {
                    "injection": fault["injection"],
                    "times": 0,
                    "overlapped": 0,
                    "calls": 0,
                    "failed": 0,
                    "codes": {},
                    "overshoot": 0.0,
                    "recovery": 0.0,
                    "failing_for": 0.0,
                    "rss": {},
                    "after_detection": None,
                    "lost": 0,
                    "doubled": 0,
                }
            row = rows[name]
            row["times"] += 1
            row["overlapped"] += 1 if overlapped else 0
            row["calls"] += episode["calls"]
            row["lost"] += episode.get("calls_lost", 0)
            row["doubled"] += episode.get("calls_ended_twice", 0)
            for code, count in episode["codes"].items():
                if not code.startswith("0 "):
                    row["failed"] += count
                    row["codes"][code.split(" ")[0]] = row["codes"].get(code.split(" ")[0], 0) + count
            row["overshoot"] = max(row["overshoot"], episode["worst_overshoot_past_deadline_ms"])
            row["recovery"] = max(row["recovery"], episode["recovery_ms"])
            row["failing_for"] = max(row["failing_for"],
                                     episode.get("failures_until_ms_into_episode", 0.0))
            for process, kib in episode["peak_rss_kib"].items():
                kind = "client" if process == "client" else "servers"
                row["rss"][kind] = max(row["rss"].get(kind, 0), kib)
            if "after_detection" in fault and not overlapped:
                after = fault["after_detection"]
                previous = row["after_detection"] or {"failed": 0, "slowest_ms": 0.0}
                row["after_detection"] = {
                    "failed": previous["failed"] + after["failed"],
                    "slowest_ms": max(previous["slowest_ms"], after["slowest_ms"]),
                }
    print("| fault | injected by | times (overlapping) | calls in its episodes | failed, by code "
          "| lost | ended twice | worst end past deadline | last failure, after the fault began | worst recovery after it ended | peak RSS client / servers |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in order:
        row = rows[name]
        codes = ", ".join(f"{count} × {code}" for code, count in sorted(row["codes"].items()))
        failed = f"{row['failed']} ({codes})" if row["failed"] else "0"
        if row["after_detection"] is not None:
            failed += (f"; after detection: {row['after_detection']['failed']} failed, slowest "
                       f"{row['after_detection']['slowest_ms']:.0f} ms")
        rss = (f"{row['rss'].get('client', 0) / 1024:.1f} / "
               f"{row['rss'].get('servers', 0) / 1024:.1f} MiB")
        print(f"| {name} | {row['injection']} | {row['times']} ({row['overlapped']}) | "
              f"{row['calls']:,} | {failed} | {row['lost']} | {row['doubled']} | "
              f"{row['overshoot']:.1f} ms | {row['failing_for']:.0f} ms | {row['recovery']:.0f} ms | "
              f"{rss} |")
    print()
    print(f"{summary['calls_issued']:,} calls in {summary['duration_s']:.0f} s; "
          f"lost {summary['calls_lost']}, ended twice {summary['calls_ended_twice']}; "
          f"worst end past a deadline {summary['worst_overshoot_past_deadline_ms']:.1f} ms; "
          f"codes {summary['codes']}")
    for process, rss in summary["rss"].items():
        print(f"- {process}: RSS {rss['start_kib'] / 1024:.1f} MiB at start, "
              f"{rss['end_kib'] / 1024:.1f} MiB at the end, peak {rss['peak_kib'] / 1024:.1f} MiB "
              f"(growth bound {rss['growth_bound_kib'] / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
