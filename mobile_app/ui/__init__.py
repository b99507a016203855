"""The Kivy side of the companion app: theme, widgets, charts, screens and the App.

Everything here reads an :class:`mobile_app.state.AppState` and draws it; nothing here talks
Bluetooth. Importing this package imports Kivy, so set Kivy's environment first
(:func:`mobile_app.main.configure_kivy`).
"""
