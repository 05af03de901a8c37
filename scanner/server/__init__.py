"""The xcscan aggregator (FastAPI): signed reports in, fleet dashboard out.

Needs the ``server`` extra (``pip install 'xcscan[server]'``); Python 3.8+ only. Nothing on the
agent side imports this package.
"""
