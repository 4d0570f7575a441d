"""The billing ledger: entries in integer paise, and the dues a consumer sees."""
