"""Print every published cost figure beside our count, as the markdown table in docs/cost.md.

    .venv/bin/python benchmarks/published_tables.py

No timing here: counts are exact and machine-independent. tests/test_cost.py asserts the same agreement.
"""

from __future__ import annotations

from mobilenet.cost import profile
from mobilenet.published import PUBLISHED, UNREPRODUCED


def main() -> None:
    print("| source | model | alpha | res | options | MACs printed | ours | params printed | ours | |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|---|")
    for row in PUBLISHED:
        num_classes = 1000 if row.name == "mobilenet_v1" else 1001
        report = profile(
            row.name, resolution=row.resolution, alpha=row.alpha, num_classes=num_classes, **dict(row.options)
        )
        options = ", ".join(f"{k}={v}" for k, v in row.options) or "-"
        source = row.source.split(",")[0].replace(" research/slim/nets/mobilenet/README.md", " README")
        status = "not reproduced" if (row.name, row.alpha, row.options) in UNREPRODUCED else "ok"
        print(
            f"| {source} | {row.name} | {row.alpha} | {row.resolution} | {options} | "
            f"{row.macs_m}M | {report.macs / 1e6:.2f}M | {row.params_m}M | {report.params_conv_linear / 1e6:.3f}M "
            f"| {status} |"
        )


if __name__ == "__main__":
    main()
