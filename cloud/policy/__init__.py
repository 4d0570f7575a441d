"""The disconnection policy: rules over account snapshots, safety limits, runs and scheduler."""
