"""Fault-and-soak harness (issue 13): a fleet under a seeded fault schedule, and its ledger."""
