"""corpora: the trace format ``shadow-trace/1`` and everything that reads, checks or makes traces.

``model`` (the records), ``codec`` (records <-> JSON with JSON-path errors), ``errors`` (TraceError),
``io`` (streaming JSON Lines reader with quarantine, byte-stable writer), ``validate`` (graph and
attempt rules), ``schema`` (the generated JSON Schema), ``generator`` (the built-in corpus), ``stats``,
``testing`` (trace builders for tests) and ``importers`` (foreign formats). Depends on nothing else in
this project; ``engines`` and ``shadow`` depend on it.
"""
