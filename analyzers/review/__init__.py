"""Code review of a diff: the changed files and functions read from it, the built-in rules
(``ast`` checks of the failure classes the knowledge base explains), rules learned from
findings marked right, the production context of changed functions, and the LLM's review."""
