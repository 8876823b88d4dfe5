"""moodtune in the browser: the chat page (``static/``), its JSON API (``api``), anonymous
sessions with CSRF tokens (``session``) and the admin dashboard (``admin``).

``bot.server.create_app`` puts them on one aiohttp app with the Kakao skill and the health
routes; this package holds only the web-specific pieces.
"""
