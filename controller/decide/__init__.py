"""Pure JobSet policy: snapshot + now → Plan.

Invariant (enforced by import-linter): modules here import only records, constants and the standard library.
They never await, read a clock, log, or raise for control flow; reasons and events are data in the Plan.
"""
