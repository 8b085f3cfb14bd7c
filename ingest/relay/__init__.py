"""The Sentry-compatible ingest endpoint (`mendline relay`): every Sentry SDK as a producer."""
