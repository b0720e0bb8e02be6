import uuid


def new_id() -> str:
    """Primary keys are UUID strings (spec 000 §2: VARCHAR(64) ids)."""
    return str(uuid.uuid4())
