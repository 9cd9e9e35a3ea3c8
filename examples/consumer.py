#!/usr/bin/env python3
"""A downstream consumer of Argus's topics, written with confluent-kafka (not Argus's client).

It reads a topic, picks each message's JSON Schema by the `schema` header (for example
`argus.frame-result.v1` -> schemas/frame-result.v1.json), validates the message against it,
checks the contract (key = camera id, `message-id` header = the body's `message_id`, a W3C
`traceparent` header) and de-duplicates on the message id, as every consumer should: Argus
may deliver a message twice after a broker outage, never with a different id.

    python examples/consumer.py --brokers 127.0.0.1:9092 --topic argus.frame-results.v1
    python examples/consumer.py ... --group my-service      # a consumer group (commits offsets)
    python examples/consumer.py ... --max 100 --idle 10      # stop after 100, or 10 s of quiet

Exit status: 0 when every message read was valid, 1 otherwise (each problem is printed).
"""

import argparse
import json
import pathlib
import sys
import time
import uuid

import jsonschema
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

SCHEMAS = pathlib.Path(__file__).resolve().parent.parent / "schemas"


def load_validators(folder):
    validators = {}
    for path in sorted(folder.glob("*.v*.json")):
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        # File frame-result.v1.json serves header value argus.frame-result.v1.
        validators["argus." + path.name.removesuffix(".json")] = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.FormatChecker()
        )
    return validators


def problems_of(message, validators):
    headers = {k: (v or b"").decode() for k, v in (message.headers() or [])}
    schema_id = headers.get("schema")
    if schema_id not in validators:
        return None, [f"unknown schema header {schema_id!r}"]
    body = json.loads(message.value())
    found = [f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in validators[schema_id].iter_errors(body)]
    key = (message.key() or b"").decode()
    if key != body.get("camera_id"):
        found.append(f"key {key!r} is not the camera id {body.get('camera_id')!r}")
    if headers.get("message-id") != body.get("message_id"):
        found.append("the message-id header differs from the body's message_id")
    if headers.get("content-type") != "application/json":
        found.append(f"content-type {headers.get('content-type')!r}")
    traceparent = headers.get("traceparent", "")
    parts = traceparent.split("-")
    if len(parts) != 4 or parts[0] != "00" or len(parts[1]) != 32 or len(parts[2]) != 16:
        found.append(f"traceparent {traceparent!r} is not W3C trace context")
    uuid.UUID(body.get("message_id", "00000000-0000-0000-0000-000000000000"))
    return body, found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brokers", default="127.0.0.1:9092")
    parser.add_argument("--topic", required=True, action="append", help="repeatable")
    parser.add_argument("--group", help="consumer group; default: read everything, commit nothing")
    parser.add_argument("--schemas", type=pathlib.Path, default=SCHEMAS)
    parser.add_argument("--max", type=int, help="stop after this many distinct messages")
    parser.add_argument("--idle", type=float, default=10.0, help="stop after this many quiet seconds")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    args = parser.parse_args()

    validators = load_validators(args.schemas)
    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": args.group or f"argus-example-{uuid.uuid4()}",
        "enable.auto.commit": bool(args.group),
        "auto.offset.reset": "earliest",
    })
    if args.group:
        consumer.subscribe(args.topic)
    else:
        # No group: read every partition from the start, without joining (or disturbing) one.
        partitions = []
        for topic in args.topic:
            metadata = consumer.list_topics(topic, timeout=10).topics[topic]
            if metadata.error is not None:
                print(f"error: topic {topic}: {metadata.error}", file=sys.stderr)
                return 1
            partitions += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.partitions]
        consumer.assign(partitions)
    seen, duplicates, invalid = set(), 0, 0
    last_message = time.monotonic()
    try:
        while time.monotonic() - last_message < args.idle and (args.max is None or len(seen) < args.max):
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    continue
                print(f"error: {message.error()}", file=sys.stderr)
                return 1
            last_message = time.monotonic()
            body, found = problems_of(message, validators)
            if found:
                invalid += 1
                print(f"INVALID {message.topic()}[{message.partition()}]@{message.offset()}: {'; '.join(found)}")
                continue
            if body["message_id"] in seen:
                duplicates += 1
                continue
            seen.add(body["message_id"])
            if not args.quiet:
                print(json.dumps(body))
    finally:
        consumer.close()
    print(f"summary: {len(seen)} valid messages, {duplicates} duplicates skipped, {invalid} invalid", file=sys.stderr)
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
