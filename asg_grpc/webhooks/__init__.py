"""Webhook delivery: the outbox's fan-out (fanout.py) and signed deliveries (worker.py). The
bodies they send are rendered in asg_grpc/wire/events.py; URLs are guarded by wire/urls.py."""
