"""The live web dashboard and Telegram Mini App served by ``orchestra bot`` (``web:`` in bots.yaml).

``server`` (aiohttp routes, sign-in, the socket), ``auth`` (initData, sessions, roles), ``hub``
(viewers, one tailer per watched task, the live list), ``views`` (the JSON of tasks) and
``static/`` (the page: HTML, CSS and a small vanilla JS client, no build step, nothing from a CDN).
"""
