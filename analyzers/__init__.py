"""What is worked out: decisions and analyses, free of Kafka and PostgreSQL.

- ``grouping``: the fingerprint that makes an event part of an issue, and secret scrubbing
- ``rootcause``: the analysers (heuristic with its knowledge base, and the LLM client behind
  the same interface) and the prompt
- ``policy``: the decisions that gate what is sent or changed, as pure functions
- ``audit``: what a change changed (an audit row's before and after), and whether the
  audit trail's hash chain is intact, and where it first breaks
- ``breaker``: a circuit breaker for calls to outside services
- ``backoff``: the one jittered exponential backoff, for every retry loop
"""
