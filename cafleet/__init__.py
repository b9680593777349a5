"""cafleet: a Director and its team of coding agents in tmux panes, over a local broker.

Kept import-free: hooks and every CLI call import this package first.
"""

__version__ = "0.2.0"
