"""Wire formats: how the core's values look on the wire (docs/wire.md).

convert.py (domain ⇄ protobuf), events.py (webhook bodies, domain → JSON), export.py (a job's
JSON-lines export), urls.py (the one parser and guard of URLs the core calls).
"""
