"""The pure core: parsing, rendering, normalising, diffing and planning. No I/O, no clock, no environment."""
