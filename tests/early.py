"""Loaded before pytest's other plugins (``make test`` passes ``-p tests.early``).

jsonschema, which nbformat (and with it nbval) imports, checks the ``iri`` string format with
``rfc3987_syntax`` when that package is installed; importing it builds a Lark grammar, 3.1 s of
CPU in every pytest process (the controller and each xdist worker), about 12 s of a test run on
two cores. nbformat's notebook schema never uses that format, so the test session tells Python
the package is absent; jsonschema then leaves the format unchecked. Only these processes are
affected: notebook kernels and the programs the tests start import what they always did.
"""

import sys

sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]
