"""Service statistics (RET-3): how the platform is used, counted from de-identified
messages into the operator's own aggregate table, and shown only in buckets of at least
k people. The clients' own dashboards stay on their own messages
(``messaging/stats.py``); this is the operator's view of the whole platform."""
