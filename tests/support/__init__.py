"""Support code shared by more than one test folder.

Imported as ``support.<module>``: pytest's default ``--import-mode=prepend``
puts tests/ on ``sys.path`` because tests/conftest.py lives in a folder that
is not a package (the same way tests/conformance is imported as
``conformance``)."""
