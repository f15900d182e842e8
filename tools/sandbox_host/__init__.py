"""The sandbox of `make sandbox` and the tests: hosts, images, registry, ACME, vendors' simulator, PKI
(tools/sandbox.py is its command line)."""
