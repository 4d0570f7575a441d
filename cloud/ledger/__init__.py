"""The billing ledger: entries in integer paise, and the dues a consumer sees."""

# The largest single amount the system takes in (₹1,000 crore). Sums of entries stay far inside
# the 64-bit integers both databases store; anything larger is refused as bad input.
MAX_PAISE = 10**12
