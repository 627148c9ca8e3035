"""The WhatsApp Cloud API connector.

* ``connector.py``: messages out over HTTPS (text, templates, media by link), the
  Cloud API's answers mapped to ``SubmitResult``s.
* ``webhooks.py``: what Meta posts back (delivery statuses, customer messages),
  as pure functions: the verification handshake, the signature check, parsing.
* ``window.py``: the 24-hour customer-service window, as pure functions.
"""
