"""Payments: the Razorpay-compatible webhook and what a captured payment does."""
