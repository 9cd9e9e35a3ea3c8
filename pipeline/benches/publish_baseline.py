"""Baseline for `cargo bench --bench publish`: librdkafka driven directly (confluent-kafka,
librdkafka 2.x) with the same settings Argus uses (idempotent, acks=all, linger.ms=5), the same
messages with the same four headers, and the same broker, on a topic the benchmark made with
Argus's topic settings. Prints one JSON line with its figures.
The headers are made before the clock starts (Argus makes its own inside the measured path), so
Python's speed does not count against the baseline.

    python publish_baseline.py BROKERS TOPIC MESSAGES SIZE RATE
"""

import json
import os
import sys
import time
import uuid

from confluent_kafka import Producer


def main():
    brokers, topic, count, size, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    producer = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "acks": "all", "linger.ms": 5})
    failed = [0]

    def delivered(err, _msg):
        if err is not None:
            failed[0] += 1

    payload = json.dumps({"camera_id": "bench", "text": "x" * max(0, size - 40)}).encode()

    def headers_for(n):
        made = []
        for _ in range(n):
            message_id = str(uuid.uuid4())
            made.append([
                ("schema", b"argus.bench.v1"),
                ("content-type", b"application/json"),
                ("message-id", message_id.encode()),
                ("traceparent", f"00-{os.urandom(16).hex()}-{message_id.replace('-', '')[16:]}-01".encode()),
            ])
        return made

    def burst(n):
        """As fast as possible: messages/s until the last is acknowledged."""
        headers = headers_for(n)
        started = time.perf_counter()
        for i in range(n):
            while True:
                try:
                    producer.produce(topic, payload, key=f"cam{i % 16}", headers=headers[i], on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.01)
            producer.poll(0)
        producer.flush(60)
        return n / (time.perf_counter() - started)

    def paced(n):
        """At a fixed rate: each message's time from produce() to its acknowledgement."""
        latencies = []
        headers = headers_for(n)
        started = time.perf_counter()
        for i in range(n):
            due = started + i / rate
            while time.perf_counter() < due:
                producer.poll(0.0005)
            sent = time.perf_counter()
            producer.produce(topic, payload, key=f"cam{i % 16}", headers=headers[i],
                             on_delivery=lambda err, msg, sent=sent: latencies.append(time.perf_counter() - sent) if err is None else delivered(err, msg))
            producer.poll(0)
        producer.flush(60)
        return sorted(latencies)

    burst(min(count, 2000))  # warm-up: connections, metadata, producer id
    throughput = burst(count)
    latencies = paced(count // 4)
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(json.dumps({"failed": failed[0], "throughput": throughput, "p50": pick(0.50), "p99": pick(0.99), "latencies": latencies}))


if __name__ == "__main__":
    main()
