"""The leaderboard: `python -m ser_bench.report` reads finished runs through MLflow's client,
aggregates them over folds and seeds, and writes Markdown, HTML and CSV (see __main__.py)."""
