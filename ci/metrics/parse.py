"""Parses Prometheus text exposition from stdin with prometheus_client's own parser and prints the
metric families as JSON: [{"name", "type", "samples": [{"name", "labels", "value"}]}].
A parse error exits non-zero with the parser's message."""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> None:
    families = []
    for family in text_string_to_metric_families(sys.stdin.read()):
        families.append(
            {
                "name": family.name,
                "type": family.type,
                "samples": [
                    {
                        "name": s.name,
                        "labels": s.labels,
                        "value": s.value if math.isfinite(s.value) else str(s.value),
                    }
                    for s in family.samples
                ],
            }
        )
    json.dump(families, sys.stdout)


if __name__ == "__main__":
    main()
