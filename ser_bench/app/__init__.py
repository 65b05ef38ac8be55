"""`python -m ser_bench.app`: live emotion in the browser (server.py: the ASGI app; page.html: the page)."""
