"""Traces: the context barnstorm sends on each request and message, and the backend's own
spans received back (OTLP) and joined to the flows that caused them."""
