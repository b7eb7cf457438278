"""The app the provider conformance suite deploys (see ``app.py``)."""
