"""Produces the sample ad events as Avro or Protobuf through the schema registry, as real producers do.

Usage: produce_registry.py <bootstrap> <registry url> <topic> <events file> [v1|v2|v3|protobuf]

The events file holds one JSON line per record: {"key": ..., "value": <the JSON event, or null>,
"raw": <hex bytes sent as they are, for poison>, "datum": <hex bytes framed with the id of the
schema registered so far, for a hostile datum or message>}. Each JSON event is serialized by
confluent-kafka's AvroSerializer (which registers the schema under `<topic>-value` and frames each
value with the schema id), with logical types: a uuid, a timestamp-micros, a decimal(18, 6), and
`campaign_id` an int. With `v2`, the schema gains a nullable `device` string, taken from each
event's `device`, and widens `campaign_id` to a long; `v3` is v2 with `cost` a double, a change no
decimal column takes. With `protobuf`, each event is an `AdEvent`
message serialized by confluent-kafka's ProtobufSerializer (which registers the file descriptor and
frames each value with the schema id and the message's index): a google.protobuf.Timestamp, an
enum of a file it imports (registered as a reference), a StringValue wrapper and a proto3 `optional` string holding the decimal's digits. Prints the
schema id.
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
        fields = [dict(f, type="long") if f["name"] == "campaign_id" else f for f in fields]
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


def ad_event_message():
    """The AdEvent message class, built from a file descriptor at run time (no protoc needed)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from google.protobuf import timestamp_pb2, wrappers_pb2  # noqa: F401 (the files AdEvent imports)

    field = descriptor_pb2.FieldDescriptorProto
    # The enum in a file of its own, which the serializer registers as a reference of the schema.
    kinds_file = descriptor_pb2.FileDescriptorProto(
        name="tidelake/sample/event_type.proto", package="tidelake.sample", syntax="proto3"
    )
    kinds = kinds_file.enum_type.add(name="EventType")
    for number, name in enumerate(["EVENT_TYPE_UNSPECIFIED", "impression", "click"]):
        kinds.value.add(name=name, number=number)
    file = descriptor_pb2.FileDescriptorProto(
        name="tidelake/sample/ad_event.proto",
        package="tidelake.sample",
        syntax="proto3",
        dependency=[
            "google/protobuf/timestamp.proto",
            "google/protobuf/wrappers.proto",
            "tidelake/sample/event_type.proto",
        ],
    )
    message = file.message_type.add(name="AdEvent")
    for number, (name, kind, type_name) in enumerate(
        [
            ("event_id", field.TYPE_STRING, None),
            ("event_time", field.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
            ("event_type", field.TYPE_ENUM, ".tidelake.sample.EventType"),
            ("ad_id", field.TYPE_INT64, None),
            ("campaign_id", field.TYPE_INT64, None),
            ("user_id", field.TYPE_MESSAGE, ".google.protobuf.StringValue"),
        ],
        start=1,
    ):
        message.field.add(name=name, number=number, type=kind, type_name=type_name, label=field.LABEL_OPTIONAL)
    # `optional string cost = 7;`: a proto3 field with presence (a synthetic oneof).
    message.oneof_decl.add(name="_cost")
    message.field.add(
        name="cost", number=7, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL, oneof_index=0, proto3_optional=True
    )
    pool = descriptor_pool.Default()
    pool.Add(kinds_file)
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tidelake.sample.AdEvent"))


def protobuf_serializer(registry):
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer

    cls = ad_event_message()
    serializer = ProtobufSerializer(cls, registry, {"use.deprecated.format": False})
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

    def serialize(event, context):
        time = datetime.datetime.fromisoformat(event["event_time"].replace("Z", "+00:00"))
        message = cls(
            event_id=event["event_id"],
            event_type=event["event_type"],
            ad_id=int(event["ad_id"]),
            campaign_id=int(event["campaign_id"]),
        )
        message.event_time.FromMicroseconds((time - epoch) // datetime.timedelta(microseconds=1))
        if event.get("user_id") is not None:
            message.user_id.value = event["user_id"]
        if event.get("cost") is not None:
            message.cost = str(event["cost"])
        return serializer(message, context)

    return serialize


def main():
    bootstrap, registry_url, topic, path = sys.argv[1:5]
    version = sys.argv[5] if len(sys.argv) > 5 else "v1"
    # A request the registry leaves unanswered times out and is tried again, rather than hang.
    registry = SchemaRegistryClient({"url": registry_url, "timeout": 10})
    if version == "protobuf":
        serialize = protobuf_serializer(registry)
    else:
        avro = AvroSerializer(registry, json.dumps(schema_of(version)))

        def serialize(event, context):
            return avro(avro_event(event, version), context)

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
                value = serialize(record["value"], context)
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
