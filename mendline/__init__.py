"""mendline."""
