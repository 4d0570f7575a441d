"""Relay commands: desired state and outbox, dispatcher, acknowledgments, lifecycle, presence."""
