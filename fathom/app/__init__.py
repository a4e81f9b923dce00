"""The application layer: where settings become services, and runs are started, resumed and reported."""
