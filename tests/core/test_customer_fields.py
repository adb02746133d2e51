"""The customer's fields are declared in three layers on purpose (docs/wire.md, "The customer's
fields"): the domain record, the proto message and the gateway's response model. The proto is
the one list: the record holds a subset of it (what `convert._by_name` copies by name), and the
gateway's model and renderer hold exactly it, so a field added in one place and not the others
fails here rather than travelling half-way."""

from __future__ import annotations

import dataclasses

from asg_common import rest_json
from asg_grpc.domain.customers import Customer
from asg_grpc.v1 import billing_pb2
from rest_gateway import models

PROTO = [f.name for f in billing_pb2.Customer.DESCRIPTOR.fields]


def test_every_field_of_the_record_travels_in_the_message() -> None:
    record = [f.name for f in dataclasses.fields(Customer)]
    assert set(record) <= set(PROTO), set(record) - set(PROTO)


def test_the_gateway_model_and_renderer_name_exactly_the_message_fields() -> None:
    assert set(models.Customer.model_fields) == set(PROTO)
    assert list(rest_json.customer(billing_pb2.Customer())) == list(models.Customer.model_fields)
