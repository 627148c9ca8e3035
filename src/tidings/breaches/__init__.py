"""The operator's breach register (BRE-1..3): personal data breaches, their versions,
the 48-hour clock and the notices to each affected client."""
