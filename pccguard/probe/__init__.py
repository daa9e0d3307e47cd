"""``pccguard probe``: a black-box audit of a live OpenAI-compatible server for cross-tenant prefix-cache sharing.

It contacts only the base URL it is given, with a bounded number of requests
and a timeout on each. :mod:`.audit` runs the measurements, :mod:`.stats`
decides, :mod:`.report` writes JSON, a table and an HTML plot; :mod:`.cli`
exposes ``register(subparsers)`` for the command line.
"""

from __future__ import annotations
