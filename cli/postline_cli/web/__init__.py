"""postline's local web pages: a small server on 127.0.0.1 (``server``) and the pages it serves (``outbox``)."""
