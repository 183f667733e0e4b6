"""The model everyone reads: route specs (routes.py), the files they are written in (files.py), what a
folder of them must hold together (checks.py) and the canonical business entities (canonical.py).
It sits below the gateway: the server, the cutover CLI and the scanner's scaffolds all read it."""
