"""Switchyard cloud: head-end and billing bridge (ledger, payments, policy, command outbox, API)."""
