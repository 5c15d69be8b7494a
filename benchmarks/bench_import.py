"""Start-up cost: ``import nami`` and the first component lookup vs a bare ``import torch``.

Each measurement runs in a fresh Python subprocess (nothing cached in ``sys.modules``);
the subprocess times itself with ``time.perf_counter`` around the statements, and the
parent also records the whole process wall time. Contenders alternate, and the table
reports medians over ``--repeats`` runs (default 5)::

    python benchmarks/bench_import.py      # writes benchmarks/results/import.json

``import nami`` loads the core but no plugin (discovery is lazy); the first
``nami.build("solver", "euler")`` runs plugin discovery (entry points) and imports the
plugins, so it is timed separately.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

SNIPPETS = {
    "import torch": (
        "import time\n"
        "t0 = time.perf_counter()\n"
        "import torch\n"
        "print(time.perf_counter() - t0)\n"
    ),
    "import nami": (
        "import time\n"
        "t0 = time.perf_counter()\n"
        "import nami\n"
        "print(time.perf_counter() - t0)\n"
    ),
    "import nami + build('solver', 'euler')": (
        "import time\n"
        "t0 = time.perf_counter()\n"
        "import nami\n"
        "t1 = time.perf_counter()\n"
        "solver = nami.build('solver', 'euler')\n"
        "t2 = time.perf_counter()\n"
        "print(t2 - t0, t2 - t1)\n"
    ),
}


def run_once(code: str) -> tuple[Optional[List[float]], float, str]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return None, wall, proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"
    return [float(v) for v in proc.stdout.split()], wall, ""


def main(argv: List[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path,
                   default=Path(__file__).resolve().parent / "results" / "import.json")
    args = p.parse_args(argv)

    inner: Dict[str, List[List[float]]] = {k: [] for k in SNIPPETS}
    walls: Dict[str, List[float]] = {k: [] for k in SNIPPETS}
    errors: Dict[str, str] = {}
    run_once(SNIPPETS["import torch"])  # warm the file-system cache once
    for _ in range(args.repeats):
        for name, code in SNIPPETS.items():
            if name in errors:
                continue
            values, wall, err = run_once(code)
            if values is None:
                errors[name] = err
                continue
            inner[name].append(values)
            walls[name].append(wall)

    rows = []
    base = statistics.median(v[0] for v in inner["import torch"]) if inner["import torch"] else None
    for name in SNIPPETS:
        if name in errors:
            rows.append({"what": name, "error": errors[name]})
            continue
        med = statistics.median(v[0] for v in inner[name])
        row = {"what": name, "median_s": med, "process_wall_s": statistics.median(walls[name]),
               "ratio_vs_torch": med / base if base else None}
        if len(inner[name][0]) > 1:
            row["lookup_s"] = statistics.median(v[1] for v in inner[name])
        rows.append(row)

    result = {"benchmark": "import time in fresh subprocesses", "repeats": args.repeats,
              "python": sys.version.split()[0], "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"median of {args.repeats} fresh subprocesses\n")
    print("| what | median (s) | of which first lookup (s) | process wall (s) | ratio vs import torch |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['what']} | unavailable: {r['error']} | | | |")
            continue
        lookup = f"{r['lookup_s']:.3f}" if "lookup_s" in r else ""
        ratio = f"{r['ratio_vs_torch']:.2f}" if r["ratio_vs_torch"] else ""
        print(f"| {r['what']} | {r['median_s']:.3f} | {lookup} | {r['process_wall_s']:.3f} | {ratio} |")
    print(f"\nwritten to {args.out}")
    return result


if __name__ == "__main__":
    main()
