"""The ear's species head, trained offline on YAMNet embeddings (``senses-train birds``)."""
