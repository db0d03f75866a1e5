"""The usage page's static files (index.html, app.js, style.css), served at /ui by gateway/operator_routes.py."""
