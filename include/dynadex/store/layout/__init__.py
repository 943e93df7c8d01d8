"""The layout room: what the three indexes look like, whichever path writes them.

Invariants kept here: SQL names of indexes and columns (``names``); how an
item becomes row, column and inverted entries, exactly and losslessly
(``shape``, ``arrow``); the one type-conflict rule (``registry``); key order
numbers (``key_order``); row-group sizes (``row_groups``). Imports nothing
else of the store: both the bulk and the stream path build on it.
"""
