"""What every service of the project shares at run time: one environment reader, one JSON log schema.

Nothing here knows about any one service; the verifier, the API and devidp import it, never the
other way round.
"""
