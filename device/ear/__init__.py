"""The ear: a continuous soundscape scanned for bird calls."""
