"""Parses Prometheus text (stdin) with the reference parser, `prometheus_client`'s, and prints its
samples as JSON: one object per sample with the metric family's name and type, the sample's name,
labels and value. A line the parser refuses fails the script."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        samples.append({
            "family": family.name,
            "type": family.type,
            "name": sample.name,
            "labels": sample.labels,
            "value": sample.value,
        })
json.dump(samples, sys.stdout)
