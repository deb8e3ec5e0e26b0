"""The engineer board: each engineer's status, current order and next planned orders, derived on read.

`status` derives the board from catalog rows and current order states
(pure), and `queries` reads them from either store. docs/board.md states the rules.
"""
