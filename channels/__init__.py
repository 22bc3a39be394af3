"""The hub of coedit: local subscriptions, ordered delivery, send queues and brokers.

May import ``persistence`` (for its error types); never imports ``server``.
"""
