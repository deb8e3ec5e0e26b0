"""Replay of a public fleet maintenance log through the SDK and the server; run `python -m simulators.replay_pdm`."""
