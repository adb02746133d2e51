"""The challenge gateway (seed 003): a reverse proxy in front of a customer's site that challenges
risky sessions with labeling items and turns the answers of sessions that pass into labels.
A process of its own, `asg-challenge` (docs/challenge.md)."""
