"""The eye: mood boards become Concept Activation Vectors; camera frames are scored live."""
