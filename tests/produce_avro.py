"""Produces the sample ad events as Avro through the schema registry, as real producers do.

Usage: produce_avro.py <bootstrap> <registry url> <topic> <events file> [v1|v2|v3]

The events file holds one JSON line per record: {"key": ..., "value": <the JSON event, or null>,
"raw": <hex bytes sent as they are, for poison>, "datum": <hex bytes framed with the id of the
schema registered so far, for a hostile Avro datum>}. Each JSON event is serialized by confluent-kafka's
AvroSerializer (which registers the schema under `<topic>-value` and frames each value with the
schema id), with logical types: a uuid, a timestamp-micros, a decimal(18, 6). With `v2`, the
schema gains a nullable `device` string, taken from each event's `device`; `v3` is v2 with `cost` a
double, a change no decimal column takes. Prints the schema id.
"""
import datetime
import decimal
import json
import os
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

# The sample events' schema, shared with the Rust tests.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ad_event.avsc")) as f:
    V1_SCHEMA = json.load(f)
V2_FIELD = {"name": "device", "type": ["null", "string"], "default": None}


V3_COST = {"name": "cost", "type": ["null", "double"], "default": None}


def schema_of(version):
    fields = list(V1_SCHEMA["fields"])
    if version in ("v2", "v3"):
        fields.append(V2_FIELD)
    if version == "v3":
        fields = [V3_COST if f["name"] == "cost" else f for f in fields]
    return dict(V1_SCHEMA, fields=fields)


def avro_event(event, version):
    time = datetime.datetime.fromisoformat(event["event_time"].replace("Z", "+00:00"))
    cost = event.get("cost")
    return {
        "event_id": event["event_id"],
        "event_time": time,
        "event_type": event["event_type"],
        "ad_id": int(event["ad_id"]),
        "campaign_id": int(event["campaign_id"]),
        "user_id": event.get("user_id"),
        "cost": None if cost is None else (float(cost) if version == "v3" else decimal.Decimal(str(cost))),
        "device": event.get("device"),
    }


def main():
    bootstrap, registry_url, topic, path = sys.argv[1:5]
    version = sys.argv[5] if len(sys.argv) > 5 else "v1"
    # A request the registry leaves unanswered times out and is tried again, rather than hang.
    registry = SchemaRegistryClient({"url": registry_url, "timeout": 10})
    serializer = AvroSerializer(registry, json.dumps(schema_of(version)))
    context = SerializationContext(topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 10})
    with open(path) as lines:
        for line in lines:
            record = json.loads(line)
            if record.get("raw") is not None:
                value = bytes.fromhex(record["raw"])
            elif record.get("datum") is not None:
                schema_id = registry.get_latest_version(f"{topic}-value").schema_id
                value = b"\x00" + schema_id.to_bytes(4, "big") + bytes.fromhex(record["datum"])
            else:
                value = serializer(avro_event(record["value"], version), context)
            while True:
                try:
                    producer.produce(topic, key=record["key"].encode(), value=value)
                    break
                except BufferError:
                    producer.poll(0.05)
    if producer.flush(60) != 0:
        sys.exit("records left unsent")
    print(registry.get_latest_version(f"{topic}-value").schema_id)


if __name__ == "__main__":
    main()
