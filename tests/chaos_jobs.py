"""Jobs of the chaos suite (tests/chaos)."""
