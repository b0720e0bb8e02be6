"""The pure core: cron and schedules, the scheduling policies, the execution transition table and the one
clock function. No Django, no I/O; everything takes ``now`` and state as arguments (the clock module is the
single place that reads the time, and only the loop and the interfaces call it)."""
