"""Separately managed accounts: the account book, the batch rebalance (one shared risk fit,
one problem per account, local processes or Ray), gross block orders with a fair allocation
of their fills, and tax lots (FIFO / HIFO / specific ID, realised gains, wash sales).

See docs/accounts.md.
"""
