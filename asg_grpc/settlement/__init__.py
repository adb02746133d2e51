"""Paying agreeing workers: the settler (settler.py) and where its transactions go (broadcast.py)."""
