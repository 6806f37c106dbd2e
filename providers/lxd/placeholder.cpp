// Removed once the LXD provider has sources of its own.
