"""The cutover ladder per route and legal entity: rules, decisions, comparison, evidence, audit.

Imports nothing from `gateway`. See DESIGN.md for the ladder and its gates.
"""
