"""Small, named fixes to moto that belong upstream; each has a conformance test that fails without it.

* ``serialize_empty_map_keys``: moto's JSON serializer writes a structure
  found under an empty key into its parent (``if key:`` treats "" as "no
  key"), so an item attribute ``{"M": {"": {"S": "e"}}}`` went out as
  ``{"M": {"S": "e"}}`` and botocore crashed parsing it. DynamoDB allows an
  empty name inside a map and answers it as stored
  (tests/local_aws/test_conformance.py::test_empty_key_in_a_map_reads_back).
* ``item_size_by_dynamodb_rule``: moto refuses items over 405,000 bytes of
  its own count (numbers by their text length) while attributes are set.
  DynamoDB's limit is 400 KB (409,600 bytes) counted by the Developer
  Guide's rule, which ``validate.check_image`` applies to every final image;
  moto's check is turned off so that one rule decides
  (test_item_of_exactly_400_kb_is_accepted_one_byte_more_refused).
* ``moto_modules_listed_once``: moto's dispatcher asks ``list_of_moto_modules``
  on every request, which lists moto's package directory and stats each of
  its ~140 entries: ~22% of the emulator's time per request (cProfile of 500
  GetRecords). The installed package does not change while the emulator
  runs, so the list is taken once (test_emulator_http: the same names, no listing
  after the first).

Invariant: each patch is idempotent and changes nothing but the case it names.
"""

from __future__ import annotations

_applied: set[str] = set()


def serialize_empty_map_keys() -> None:
    if "serialize_empty_map_keys" in _applied:
        return
    from moto.core.serialize import BaseJSONSerializer

    original = BaseJSONSerializer._serialize_type_map

    def _serialize_type_map(self, serialized, value, shape, key):
        if "" not in value:
            return original(self, serialized, value, shape, key)
        original(self, serialized, {k: v for k, v in value.items() if k != ""}, shape, key)
        holder = self.MAP_TYPE()
        self._serialize(holder, value[""], shape.value, "empty-map-key")
        target = serialized[self.get_serialized_name(shape, key)]
        (target[""],) = holder.values()

    BaseJSONSerializer._serialize_type_map = _serialize_type_map
    _applied.add("serialize_empty_map_keys")


def item_size_by_dynamodb_rule() -> None:
    if "item_size_by_dynamodb_rule" in _applied:
        return
    from moto.dynamodb.models.dynamo_type import LimitedSizeDict

    LimitedSizeDict.__setitem__ = dict.__setitem__
    _applied.add("item_size_by_dynamodb_rule")


def moto_modules_listed_once() -> None:
    if "moto_modules_listed_once" in _applied:
        return
    from moto import backends

    original = backends.list_of_moto_modules
    listed: list[tuple[str, ...]] = []

    def list_of_moto_modules():
        if not listed:
            listed.append(tuple(original()))
        return listed[0]

    list_of_moto_modules.original = original
    backends.list_of_moto_modules = list_of_moto_modules
    _applied.add("moto_modules_listed_once")


def apply_all() -> None:
    serialize_empty_map_keys()
    item_size_by_dynamodb_rule()
    moto_modules_listed_once()
