"""The contracts between the layers, free of I/O: ErrorEvent v1, findings, alerts, settings,
and the error tree."""
