"""Primary keys are version 7 UUIDs: valid UUID strings whose order follows their creation."""

import uuid

from scheduler_project.ids import new_id, uuid7


def test_ids_are_version_7_uuid_strings_of_the_rfc_variant():
    for _ in range(100):
        parsed = uuid.UUID(new_id())
        assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)


def test_ids_sort_by_the_millisecond_they_were_made_in_and_never_repeat():
    made = [str(uuid7(now_ms=ms)) for ms in (1_700_000_000_000, 1_700_000_000_001, 1_800_000_000_000)
            for _ in range(50)]
    assert [value[:13] for value in made] == sorted(value[:13] for value in made)
    assert sorted(made[:50])[-1] < sorted(made[50:100])[0] < sorted(made[100:])[0]
    assert len(set(made)) == len(made)


def test_the_first_48_bits_are_the_milliseconds():
    assert uuid7(now_ms=0x0123456789AB).int >> 80 == 0x0123456789AB
