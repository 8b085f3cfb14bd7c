"""The Sentry-compatible endpoint (`mendline relay`): what Sentry SDKs send, read as Sentry's
Relay reads it (envelopes, their items and limits, authentication, compressed bodies), and
turned into ErrorEvents for the errors topic."""
