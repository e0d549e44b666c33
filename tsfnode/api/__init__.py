"""The local JSON API (`/api/`): for people's tokens and the light sender client; one auth
gate in `app.py`.
"""
