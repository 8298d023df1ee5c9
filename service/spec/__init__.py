"""The spec language both sides share: networks, requests, demo JavaScript, snapshots, datasets, sweeps."""
