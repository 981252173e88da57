"""Build-time helpers imported by setup.py and the build backend; not installed."""
