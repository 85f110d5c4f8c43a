"""The balancer's state: pure, with time passed in as ``now``."""
