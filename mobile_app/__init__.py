"""Senses companion app (Kivy): food, concept and birds at a glance."""
