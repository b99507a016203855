"""Training the ear's bird-species head on YAMNet embeddings."""
