"""HTTP faces: the JSON API (api), server-rendered pages (pages, templates/, static/) and inline SVG charts (svg).
The top of the import order: nothing imports web but app.py."""
