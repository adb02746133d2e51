"""Dispatch: hands open task slots to connected workers and records their labels.

The core keeps the open tasks in memory (a window, oldest first, loaded from the store) so a
label is checked and counted without a read; every change is written to the store in group
commits, and a label is acknowledged only after the commit that holds it. The same streams
carry best-effort payment notices (`payments.py`, `Dispatcher.notify_payments`).
"""
