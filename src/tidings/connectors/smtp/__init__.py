"""Email over SMTP: a relay client (``connector``), a listener for bounces and inbound
mail (``listener``), and the pure reading of what arrives (``bounces``)."""
