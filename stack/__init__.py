"""The native stack: PostgreSQL, a Kafka broker and Kafka Connect with Debezium, as local processes.

``python -m stack up|status|down`` is the entry point; see ``stack.__main__``.
"""
