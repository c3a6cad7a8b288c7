//! The Redis Enterprise REST API emulator: bootstrap, nodes, bdbs backed by real redis-server processes.
