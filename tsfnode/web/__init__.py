"""The web application (`/web/`): pages, templates and static files; one session gate in
`app.py`.
"""
