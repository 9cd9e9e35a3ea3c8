#!/usr/bin/env bash
# What `make run` prints before Argus starts: where the results go and how to look at them.
cat <<TXT

  Argus is starting on the sample video (Ctrl-C to stop; \`make stop\` stops Redis and the broker).

  Results
    Kafka   topic argus.frame-results.v1 on 127.0.0.1:9092, one JSON message per analysed frame
            watch:  source deploy/env.sh && ./target/debug/argus tail argus.frame-results.v1
    Captions topic argus.captions.v1, one caption per 10 s chunk, and its self-corrected revision
            watch:  source deploy/env.sh && ./target/debug/argus tail argus.captions.v1
    Redis   latest result per camera on 127.0.0.1:6379
            read:   redis-cli get argus:camera:sample-street:latest
            live:   redis-cli subscribe argus:camera:sample-street
            captions: redis-cli zrange argus:captions:sample-street -3 -1
    Metrics http://127.0.0.1:8090/metrics
    Streams http://127.0.0.1:8090/api/v1/streams

TXT
